//! Charts drawn on the server as SVG: a pair's quantity over a period (a step line, as
//! the ledger resolves it) and its daily usage (a bar a day). Each mark carries its value
//! in a `<title>` and `data-` attributes, and the page lists the same figures in a table,
//! so that nothing is shown only as a picture.

use maud::{Markup, html};
use rust_decimal::prelude::ToPrimitive;

use crate::domain::ledger::DayUsage;
use crate::domain::quantity::Quantity;
use crate::domain::time::Timestamp;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
/// Room for the axis labels.
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 12.0;

fn number(q: Quantity) -> f64 {
    q.decimal().to_f64().unwrap_or(0.0)
}

/// The top of the scale: the largest value, rounded up to a round number (at least 1).
fn scale_top(max: f64) -> f64 {
    if max <= 1.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    let steps = [1.0, 2.0, 2.5, 5.0, 10.0];
    steps
        .iter()
        .map(|s| s * magnitude)
        .find(|top| *top >= max)
        .unwrap_or(10.0 * magnitude)
}

fn y_of(value: f64, top: f64) -> f64 {
    TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - value / top)
}

fn axis(top: f64) -> Markup {
    let plot_right = WIDTH - 8.0;
    html! {
        g.axis aria-hidden="true" {
            @for fraction in [0.0, 0.5, 1.0] {
                @let value = top * fraction;
                @let y = y_of(value, top);
                line x1=(LEFT) x2=(plot_right) y1=(y) y2=(y) class="grid" {}
                text x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" { (trim(value)) }
            }
        }
    }
}

/// A value without a needless fraction.
fn trim(value: f64) -> String {
    if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The quantity from `start` to `end`: `initial` at `start`, then each change.
pub fn quantity_over_time(
    label: &str,
    start: Timestamp,
    end: Timestamp,
    initial: Quantity,
    changes: &[(Timestamp, Quantity)],
) -> Markup {
    let mut steps = vec![(start, initial)];
    steps.extend(changes.iter().copied());
    let top = scale_top(steps.iter().map(|(_, q)| number(*q)).fold(0.0, f64::max));
    let span = (end.micros() - start.micros()).max(1) as f64;
    let x_of = |at: Timestamp| {
        LEFT + (WIDTH - 8.0 - LEFT) * ((at.micros() - start.micros()) as f64 / span)
    };
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label)
            data-chart="quantity" {
            (axis(top))
            @for (i, (at, quantity)) in steps.iter().enumerate() {
                @let until = steps.get(i + 1).map_or(end, |(next, _)| *next);
                @let y = y_of(number(*quantity), top);
                g.step data-from=(at) data-quantity=(quantity.to_string()) {
                    title { (at) ": " (quantity.to_string()) }
                    line x1=(x_of(*at)) x2=(x_of(until)) y1=(y) y2=(y) {}
                    @if let Some((next_at, next_q)) = steps.get(i + 1) {
                        line x1=(x_of(*next_at)) x2=(x_of(*next_at)) y1=(y)
                            y2=(y_of(number(*next_q), top)) class="rise" {}
                    }
                }
            }
        }
    }
}

/// One bar a day: the largest quantity in effect that day.
pub fn daily_usage(label: &str, days: &[DayUsage]) -> Markup {
    let top = scale_top(
        days.iter()
            .map(|d| number(d.max_quantity))
            .fold(0.0, f64::max),
    );
    let slot = (WIDTH - 8.0 - LEFT) / days.len().max(1) as f64;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label)
            data-chart="usage" {
            (axis(top))
            @for (i, day) in days.iter().enumerate() {
                @let y = y_of(number(day.max_quantity), top);
                rect.bar x=(LEFT + slot * i as f64 + slot * 0.15) y=(y)
                    width=(slot * 0.7) height=((HEIGHT - BOTTOM - y).max(0.0))
                    data-date=(day.date) data-max=(day.max_quantity.to_string()) {
                    title { (day.date) ": at most " (day.max_quantity.to_string()) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_ends_on_a_round_number_above_the_largest_value() {
        assert_eq!(scale_top(0.0), 1.0);
        assert_eq!(scale_top(7.0), 10.0);
        assert_eq!(scale_top(10.0), 10.0);
        assert_eq!(scale_top(12.0), 20.0);
        assert_eq!(scale_top(230.0), 250.0);
        assert_eq!(scale_top(4100.0), 5000.0);
    }
}
