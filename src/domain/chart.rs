//! The dashboard's chart, drawn on the server as SVG (no script, no CDN):
//! DND changes per day, stacked by channel. Pure: counts in, markup out.

use std::fmt::Write;

use chrono::NaiveDate;

use super::dnd::xml_escape;
use super::Channel;

/// One day's changes, per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    /// (channel, count), in `Channel::ALL` order, counts above zero.
    pub counts: Vec<(Channel, i64)>,
}

impl Day {
    pub fn total(&self) -> i64 {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

/// A colour per channel, distinct and readable on white.
pub fn colour(channel: Channel) -> &'static str {
    match channel {
        Channel::Sms => "#1f6feb",
        Channel::Call => "#8250df",
        Channel::Email => "#bf3989",
        Channel::Facebook => "#0a7d5a",
        Channel::Gmb => "#6e7781",
        Channel::Whatsapp => "#9a6700",
    }
}

const WIDTH: i64 = 720;
const HEIGHT: i64 = 220;
const LEFT: i64 = 40;
const BOTTOM: i64 = 24;
const TOP: i64 = 10;

/// Stacked bars, one per day, with a y axis and a date under every
/// seventh bar; each bar carries a `<title>` with its numbers (a tooltip,
/// and what a screen reader reads). `label` names the chart.
pub fn stacked_bars(days: &[Day], label: &str) -> String {
    let max = days.iter().map(Day::total).max().unwrap_or(0).max(1);
    // A round top for the axis: 1, 2, 5 × 10^n.
    let mut top = 1;
    while top < max {
        top = match top.to_string().chars().next() {
            Some('1') => top * 2,
            Some('2') => top / 2 * 5,
            _ => top * 2,
        };
    }
    let plot_h = HEIGHT - BOTTOM - TOP;
    let plot_w = WIDTH - LEFT - 8;
    let n = days.len().max(1) as i64;
    let slot = plot_w / n;
    let bar = (slot - 2).max(1);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{}\" class=\"chart\">",
        xml_escape(label)
    );
    for step in 0..=2 {
        let value = top * step / 2;
        let y = TOP + plot_h - plot_h * step / 2;
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#d0d7de\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">{value}</text>",
            WIDTH - 8,
            LEFT - 4,
            y + 4
        );
    }
    for (i, day) in days.iter().enumerate() {
        let x = LEFT + slot * i as i64 + 1;
        let mut y = TOP + plot_h;
        let parts: Vec<String> = day
            .counts
            .iter()
            .map(|(c, k)| format!("{} {k}", c.label()))
            .collect();
        let title = if parts.is_empty() {
            format!("{}: no change", day.date)
        } else {
            format!("{}: {}", day.date, parts.join(", "))
        };
        let _ = write!(svg, "<g><title>{}</title>", xml_escape(&title));
        for (channel, count) in &day.counts {
            let h = (plot_h * count / top).max(1);
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{bar}\" height=\"{h}\" fill=\"{}\"/>",
                colour(*channel)
            );
        }
        // An invisible full-height target, so the tooltip is reachable on
        // empty days too.
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{TOP}\" width=\"{bar}\" height=\"{plot_h}\" fill=\"transparent\"/></g>"
        );
        if i % 7 == 0 || i + 1 == days.len() {
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#444\">{}</text>",
                x + bar / 2,
                HEIGHT - 8,
                day.date.format("%b %-d")
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32, counts: Vec<(Channel, i64)>) -> Day {
        Day {
            date: NaiveDate::from_ymd_opt(2026, 11, d).unwrap(),
            counts,
        }
    }

    #[test]
    fn bars_stack_per_channel_with_their_numbers_in_titles() {
        let svg = stacked_bars(
            &[
                day(1, vec![(Channel::Sms, 3), (Channel::Email, 1)]),
                day(2, vec![]),
            ],
            "DND changes <30 days>",
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("aria-label=\"DND changes &lt;30 days&gt;\""));
        assert!(
            svg.contains("<title>2026-11-01: SMS 3, Email 1</title>"),
            "{svg}"
        );
        assert!(svg.contains("<title>2026-11-02: no change</title>"));
        assert_eq!(svg.matches(colour(Channel::Sms)).count(), 1);
        assert!(!svg.contains("<script"));
    }

    #[test]
    fn the_axis_top_is_round_and_covers_the_highest_day() {
        let svg = stacked_bars(&[day(1, vec![(Channel::Sms, 37)])], "x");
        assert!(svg.contains(">50</text>"), "{svg}");
        assert!(svg.contains(">25</text>"), "{svg}");
    }
}
