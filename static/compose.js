// The SMS composer's character and segment counter, kept up to date as
// one types. The same count as the server's (src/domain/message.rs,
// sms_size), which renders it on the page: without this script the count
// is the one of the page as served.
(function () {
  "use strict";
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENSION = "\f^{}\\[~]|€";

  function septets(c) {
    if (BASIC.indexOf(c) >= 0) { return 1; }
    if (EXTENSION.indexOf(c) >= 0) { return 2; }
    return 0;
  }

  function size(text) {
    var chars = Array.from(text);
    var gsm = chars.map(septets);
    var unicode = gsm.indexOf(0) >= 0;
    var costs = unicode ? chars.map(function (c) { return c.length; }) : gsm;
    var single = unicode ? 70 : 160;
    var each = unicode ? 67 : 153;
    var units = costs.reduce(function (a, b) { return a + b; }, 0);
    var segments = 0;
    if (units > 0 && units <= single) {
      segments = 1;
    } else if (units > single) {
      segments = 1;
      var used = 0;
      costs.forEach(function (cost) {
        if (used + cost > each) { segments += 1; used = 0; }
        used += cost;
      });
    }
    return chars.length + " character" + (chars.length === 1 ? "" : "s") +
      " · " + segments + " SMS segment" + (segments === 1 ? "" : "s") +
      " (" + (unicode ? "Unicode" : "GSM-7") + ")";
  }

  function watch(field) {
    var counter = document.getElementById(field.getAttribute("data-sms-counter"));
    if (!counter) { return; }
    var update = function () {
      // The form sends a line break as CR LF, and the server counts what
      // it receives.
      var said = size(field.value.replace(/\r?\n/g, "\r\n"));
      if (counter.textContent !== said) { counter.textContent = said; }
    };
    field.addEventListener("input", update);
    update();
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("textarea[data-sms-counter]"), watch);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
