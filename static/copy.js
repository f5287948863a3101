// Copy buttons: each `button.copy[data-copy]` copies its value (a webhook
// URL, a verify token). The buttons are `hidden` in the page and shown
// here, so without JavaScript there is only the text to select. The
// result is said in the page's `#copy-status` live region ("Copied"), and
// on the button for a moment.
(function () {
  "use strict";

  function status() {
    var region = document.getElementById("copy-status");
    if (!region) {
      region = document.createElement("p");
      region.id = "copy-status";
      region.className = "visually-hidden";
      region.setAttribute("aria-live", "polite");
      document.body.appendChild(region);
    }
    return region;
  }

  function announce(words) {
    var region = status();
    // Emptied first, so the same words twice are announced twice.
    region.textContent = "";
    window.setTimeout(function () {
      region.textContent = words;
    }, 30);
  }

  // Selects the block's text, so that Ctrl+C copies it when nothing else can.
  function select(button) {
    var block = button.closest(".url-block");
    var code = block && block.querySelector("code");
    if (!code) {
      return;
    }
    var range = document.createRange();
    range.selectNodeContents(code);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function fallback(button) {
    select(button);
    try {
      return document.execCommand("copy");
    } catch (e) {
      return false;
    }
  }

  function done(button, copied) {
    if (!copied) {
      announce("Selected: press Ctrl+C (⌘C on a Mac) to copy it.");
      return;
    }
    announce("Copied");
    button.textContent = "Copied";
    window.setTimeout(function () {
      button.textContent = "Copy";
    }, 2000);
  }

  function copy(button) {
    var value = button.getAttribute("data-copy") || "";
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(
        function () {
          done(button, true);
        },
        function () {
          done(button, fallback(button));
        }
      );
    } else {
      done(button, fallback(button));
    }
  }

  var buttons = document.querySelectorAll("button.copy[data-copy]");
  Array.prototype.forEach.call(buttons, function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      copy(button);
    });
  });
})();
