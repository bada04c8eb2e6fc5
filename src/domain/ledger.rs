//! The license-updates ledger: how entries resolve to absolute quantities, and how a
//! history of quantities becomes daily usage. Pure functions; both storage backends
//! call them inside their transactions.
//!
//! For one (account, license) pair, entries are ordered by `effective_from`, ties by
//! arrival (`seq`). An entry's absolute quantity is its own quantity if ABSOLUTE, else the
//! absolute quantity of the entry before it (0 if none) plus its own. A new entry arrives
//! last, so it goes after every existing entry at its instant.
//!
//! Storage keeps each entry's absolute quantity, less the **shifts** covering it. A
//! backdated entry that would change many later entries records one shift (a delta over
//! a range of positions) instead of rewriting them; shifts add up, so an entry's true
//! absolute quantity is its stored one plus the deltas of the shifts covering it.

use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::quantity::Quantity;
use super::time::{MICROS_PER_DAY, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum UpdateType {
    Relative,
    Absolute,
}

impl UpdateType {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateType::Relative => "RELATIVE",
            UpdateType::Absolute => "ABSOLUTE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "RELATIVE" => Some(UpdateType::Relative),
            "ABSOLUTE" => Some(UpdateType::Absolute),
            _ => None,
        }
    }

    /// The absolute quantity an entry of this type with `given` has after `prior`.
    fn apply(self, prior: Quantity, given: Quantity) -> Option<Quantity> {
        match self {
            UpdateType::Absolute => Some(given),
            UpdateType::Relative => prior.checked_add(given),
        }
    }
}

/// An entry after a new one and before the next ABSOLUTE entry, so RELATIVE: its absolute
/// quantity moves with the new entry's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaterEntry {
    pub seq: i64,
    pub effective_from: Timestamp,
    /// The resolved absolute quantity.
    pub absolute: Quantity,
}

/// What inserting an entry changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insertion {
    /// The new entry's absolute quantity.
    pub absolute: Quantity,
    /// Later entries whose absolute quantity changes: `(seq, new absolute)`.
    pub changed: Vec<(i64, Quantity)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("this update would make the quantity negative at {0}")]
    NegativeAt(Timestamp),
    #[error("this update would make the quantity at {0} reach 10^18 or more")]
    OutOfRangeAt(Timestamp),
}

/// Resolves a new entry placed after an entry whose absolute quantity is `prior` (zero if
/// none), followed by `later`: the entries after it up to the next ABSOLUTE one, in ledger
/// order (that one, like everything after it, is unaffected). Each of them is the absolute
/// quantity before it plus its own, so each moves by what the new entry changes: its
/// absolute quantity less `prior`. Refuses if any quantity would become negative or leave
/// the allowed range, naming the first such entry's instant.
pub fn resolve_insertion(
    prior: Quantity,
    effective_from: Timestamp,
    update_type: UpdateType,
    given: Quantity,
    later: &[LaterEntry],
) -> Result<Insertion, LedgerError> {
    let absolute = checked(update_type.apply(prior, given), effective_from)?;
    let delta = absolute.decimal() - prior.decimal();
    if delta.is_zero() {
        return Ok(Insertion {
            absolute,
            changed: Vec::new(),
        });
    }
    let changed = (later.iter())
        .map(|entry| {
            let moved = Quantity::new(entry.absolute.decimal() + delta).ok();
            Ok((entry.seq, checked(moved, entry.effective_from)?))
        })
        .collect::<Result<_, _>>()?;
    Ok(Insertion { absolute, changed })
}

/// Where an entry stands in its pair: by instant, then by arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub at: i64,
    pub seq: i64,
}

impl Position {
    /// After every entry: the end of a shift that no ABSOLUTE entry bounds.
    pub const END: Position = Position {
        at: i64::MAX,
        seq: i64::MAX,
    };

    /// After every entry at `at` so far, before every entry after `at`: where a new
    /// entry at `at` goes, as far as the entries already there are concerned.
    pub fn after_all_at(at: Timestamp) -> Self {
        Position {
            at: at.micros(),
            seq: i64::MAX,
        }
    }

    pub fn of(entry: &LaterEntry) -> Self {
        Position {
            at: entry.effective_from.micros(),
            seq: entry.seq,
        }
    }
}

/// Every entry of the pair strictly between `from` and `to` has a true absolute quantity
/// of its stored one plus `delta`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub from: Position,
    pub to: Position,
    pub delta: Decimal,
}

impl Shift {
    pub fn covers(&self, position: Position) -> bool {
        self.from < position && position < self.to
    }
}

/// A backdated entry rewrites at most this many later entries; beyond, it records a shift.
pub const MOST_REWRITES: usize = 8;
/// A pair with more shifts than this has them folded into its stored quantities.
pub const MOST_SHIFTS: usize = 32;

/// The sum of the deltas of the shifts covering `position`.
pub fn covering(shifts: &[Shift], position: Position) -> Decimal {
    (shifts.iter())
        .filter(|shift| shift.covers(position))
        .map(|shift| shift.delta)
        .sum()
}

/// The absolute quantity of an entry at `position` that stores `stored`; `None` if the
/// sum is no quantity, which only a corrupt ledger gives.
pub fn shifted(stored: Decimal, position: Position, shifts: &[Shift]) -> Option<Quantity> {
    Quantity::new(stored + covering(shifts, position)).ok()
}

/// What a write stores: the new entry's quantity, the later entries' rewritten ones, and
/// the shift that stands for rewriting them, if there are too many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The new entry's absolute quantity, as reported.
    pub absolute: Quantity,
    /// The new entry's absolute quantity, as stored.
    pub stored: Decimal,
    /// Later entries' new stored quantities: `(seq, stored)`.
    pub rewrites: Vec<(i64, Decimal)>,
    pub shift: Option<Shift>,
}

/// [`resolve_insertion`] with the pair's `shifts`: `prior` and `later` carry true
/// absolute quantities (see [`shifted`]), and `next_absolute` is where the next ABSOLUTE
/// entry stands, if any. When more than [`MOST_REWRITES`] later entries change, they all
/// change by one delta, and a shift up to that entry replaces their rewrites.
pub fn plan_insertion(
    prior: Quantity,
    (effective_from, update_type, given): (Timestamp, UpdateType, Quantity),
    later: &[LaterEntry],
    next_absolute: Option<Position>,
    shifts: &[Shift],
) -> Result<Plan, LedgerError> {
    let insertion = resolve_insertion(prior, effective_from, update_type, given, later)?;
    let from = Position::after_all_at(effective_from);
    let stored = insertion.absolute.decimal() - covering(shifts, from);
    if insertion.changed.len() > MOST_REWRITES {
        let to = next_absolute.unwrap_or(Position::END);
        let delta = insertion.absolute.decimal() - prior.decimal();
        return Ok(Plan {
            absolute: insertion.absolute,
            stored,
            rewrites: Vec::new(),
            shift: Some(Shift { from, to, delta }),
        });
    }
    let rewrites = (insertion.changed.iter())
        .map(|(seq, absolute)| {
            let position = (later.iter())
                .find(|entry| entry.seq == *seq)
                .map_or(Position::END, Position::of);
            (*seq, absolute.decimal() - covering(shifts, position))
        })
        .collect();
    Ok(Plan {
        absolute: insertion.absolute,
        stored,
        rewrites,
        shift: None,
    })
}

/// Whether a pair with `count` shifts has them folded into its entries.
pub fn must_fold(count: usize) -> bool {
    count > MOST_SHIFTS
}

/// The stored quantities that take in every shift, so that the shifts can go:
/// `(seq, stored)` for each of `entries` (`(position, stored)`) that a shift moves.
pub fn fold(entries: &[(Position, Decimal)], shifts: &[Shift]) -> Vec<(i64, Decimal)> {
    (entries.iter())
        .filter_map(|(position, stored)| {
            let delta = covering(shifts, *position);
            (!delta.is_zero()).then(|| (position.seq, *stored + delta))
        })
        .collect()
}

fn checked(quantity: Option<Quantity>, at: Timestamp) -> Result<Quantity, LedgerError> {
    match quantity {
        None => Err(LedgerError::OutOfRangeAt(at)),
        Some(q) if q.is_negative() => Err(LedgerError::NegativeAt(at)),
        Some(q) => Ok(q),
    }
}

/// One UTC day of usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayUsage {
    pub date: NaiveDate,
    /// The largest quantity in effect at any instant of the day.
    pub max_quantity: Quantity,
    /// The quantity in effect at the day's last instant.
    pub end_quantity: Quantity,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub days: Vec<DayUsage>,
    /// The sum of the days' maximum quantities.
    pub max_quantity_days: Decimal,
    /// The integral of the quantity over the period, in quantity × seconds.
    pub quantity_seconds: Decimal,
}

/// Daily usage over `days` UTC days from `start`. `initial` is the quantity in effect at
/// `start`; `changes` are `(instant, absolute quantity)` of the entries strictly after
/// `start` and before the period's end, in ledger order. Of several entries at one
/// instant only the last was ever in effect.
pub fn daily_usage(
    initial: Quantity,
    changes: &[(Timestamp, Quantity)],
    start: NaiveDate,
    days: u32,
) -> Usage {
    let mut current = initial;
    let mut pending = changes.iter().peekable();
    let mut rows = Vec::with_capacity(days as usize);
    let mut max_quantity_days = Decimal::ZERO;
    let mut quantity_micros = Decimal::ZERO;
    let seconds = |micros: i64| Decimal::new(micros, 6);

    for offset in 0..days {
        let Some(date) = start.checked_add_days(Days::new(offset.into())) else {
            break;
        };
        let day_start = Timestamp::midnight(date).micros();
        let day_end = day_start + MICROS_PER_DAY;
        // Entries exactly at midnight set the quantity the day starts with.
        while let Some((_, q)) = pending.next_if(|(at, _)| at.micros() <= day_start) {
            current = *q;
        }
        let mut max = current;
        let mut since = day_start;
        while let Some((at, q)) = pending.next_if(|(at, _)| at.micros() < day_end) {
            let at = at.micros();
            quantity_micros += current.decimal() * seconds(at - since);
            since = at;
            current = *q;
            // Only the last entry at an instant counts toward the maximum.
            let overtaken = pending.peek().is_some_and(|(next, _)| next.micros() == at);
            if !overtaken {
                max = max.max(current);
            }
        }
        quantity_micros += current.decimal() * seconds(day_end - since);
        max_quantity_days += max.decimal();
        rows.push(DayUsage {
            date,
            max_quantity: max,
            end_quantity: current,
        });
    }
    Usage {
        days: rows,
        max_quantity_days,
        quantity_seconds: quantity_micros.round_dp(6).normalize(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap()
    }

    fn t(micros: i64) -> Timestamp {
        Timestamp::from_micros(micros).unwrap()
    }

    /// An entry as the test ledgers keep it.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct StoredEntry {
        seq: i64,
        effective_from: Timestamp,
        update_type: UpdateType,
        absolute: Quantity,
    }

    impl StoredEntry {
        fn position(&self) -> Position {
            Position {
                at: self.effective_from.micros(),
                seq: self.seq,
            }
        }
    }

    /// What storage reads after a new entry: the entries up to the next ABSOLUTE one,
    /// and where that one stands.
    fn later_of(after: &[StoredEntry]) -> (Vec<LaterEntry>, Option<Position>) {
        let next = after
            .iter()
            .position(|e| e.update_type == UpdateType::Absolute);
        let later = (after[..next.unwrap_or(after.len())].iter())
            .map(|e| LaterEntry {
                seq: e.seq,
                effective_from: e.effective_from,
                absolute: e.absolute,
            })
            .collect();
        (later, next.map(|i| after[i].position()))
    }

    /// The ledger as storage would keep it: entries in ledger order, each resolved.
    #[derive(Default, Clone)]
    struct Ledger {
        entries: Vec<StoredEntry>,
        next_seq: i64,
    }

    impl Ledger {
        /// Inserts the way both backends do: find the position, resolve, write.
        fn insert(
            &mut self,
            at: i64,
            kind: UpdateType,
            given: Quantity,
        ) -> Result<Quantity, LedgerError> {
            let position = self
                .entries
                .partition_point(|e| e.effective_from.micros() <= at);
            let prior = position
                .checked_sub(1)
                .map_or(Quantity::ZERO, |i| self.entries[i].absolute);
            let (later, _) = later_of(&self.entries[position..]);
            let insertion = resolve_insertion(prior, t(at), kind, given, &later)?;
            for (seq, absolute) in &insertion.changed {
                let entry = self.entries.iter_mut().find(|e| e.seq == *seq).unwrap();
                entry.absolute = *absolute;
            }
            self.next_seq += 1;
            self.entries.insert(
                position,
                StoredEntry {
                    seq: self.next_seq,
                    effective_from: t(at),
                    update_type: kind,
                    absolute: insertion.absolute,
                },
            );
            Ok(insertion.absolute)
        }

        fn at(&self, micros: i64) -> Quantity {
            let position = self
                .entries
                .partition_point(|e| e.effective_from.micros() <= micros);
            position
                .checked_sub(1)
                .map_or(Quantity::ZERO, |i| self.entries[i].absolute)
        }
    }

    /// The naive model: every absolute quantity recomputed from scratch after each write.
    fn reference(history: &[(i64, i64, UpdateType, Quantity)]) -> Option<Vec<(i64, Quantity)>> {
        let mut sorted = history.to_vec();
        sorted.sort_by_key(|(at, seq, _, _)| (*at, *seq));
        let mut running = Quantity::ZERO;
        let mut out = Vec::new();
        for (_, seq, kind, given) in sorted {
            running = kind.apply(running, given)?;
            if running.is_negative() {
                return None;
            }
            out.push((seq, running));
        }
        Some(out)
    }

    #[test]
    fn relative_entries_add_to_the_one_before() {
        let mut ledger = Ledger::default();
        assert_eq!(
            ledger.insert(100, UpdateType::Absolute, q("10")),
            Ok(q("10"))
        );
        assert_eq!(
            ledger.insert(200, UpdateType::Relative, q("-3")),
            Ok(q("7"))
        );
        assert_eq!(
            ledger.insert(300, UpdateType::Relative, q("0.5")),
            Ok(q("7.5"))
        );
        assert_eq!(ledger.at(99), Quantity::ZERO);
        assert_eq!(ledger.at(250), q("7"));
    }

    #[test]
    fn a_backdated_entry_re_resolves_later_relative_entries_up_to_an_absolute() {
        let mut ledger = Ledger::default();
        ledger.insert(100, UpdateType::Absolute, q("10")).unwrap();
        ledger.insert(300, UpdateType::Relative, q("2")).unwrap();
        ledger.insert(400, UpdateType::Absolute, q("1")).unwrap();
        ledger.insert(500, UpdateType::Relative, q("1")).unwrap();
        assert_eq!(
            ledger.insert(200, UpdateType::Relative, q("5")),
            Ok(q("15"))
        );
        let absolutes: Vec<_> = ledger
            .entries
            .iter()
            .map(|e| e.absolute.to_string())
            .collect();
        assert_eq!(absolutes, ["10", "15", "17", "1", "2"]);
    }

    #[test]
    fn ties_at_one_instant_resolve_in_arrival_order() {
        let mut ledger = Ledger::default();
        ledger.insert(100, UpdateType::Absolute, q("5")).unwrap();
        ledger.insert(100, UpdateType::Relative, q("1")).unwrap();
        assert_eq!(ledger.at(100), q("6"));
        assert_eq!(ledger.insert(100, UpdateType::Absolute, q("2")), Ok(q("2")));
        assert_eq!(ledger.at(100), q("2"));
    }

    #[test]
    fn refuses_a_write_that_makes_a_later_quantity_negative_and_names_the_instant() {
        let mut ledger = Ledger::default();
        ledger.insert(100, UpdateType::Absolute, q("5")).unwrap();
        ledger.insert(300, UpdateType::Relative, q("-4")).unwrap();
        let before = ledger.entries.clone();
        assert_eq!(
            ledger.insert(200, UpdateType::Absolute, q("3")),
            Err(LedgerError::NegativeAt(t(300)))
        );
        assert_eq!(
            ledger.insert(50, UpdateType::Relative, q("-1")),
            Err(LedgerError::NegativeAt(t(50)))
        );
        assert_eq!(ledger.entries, before);
    }

    #[test]
    fn refuses_a_sum_out_of_range() {
        let mut ledger = Ledger::default();
        ledger
            .insert(100, UpdateType::Absolute, q("999999999999999999"))
            .unwrap();
        assert_eq!(
            ledger.insert(200, UpdateType::Relative, q("1")),
            Err(LedgerError::OutOfRangeAt(t(200)))
        );
    }

    #[test]
    fn daily_usage_takes_each_days_maximum_and_end() {
        let day = MICROS_PER_DAY;
        let start = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let s = Timestamp::midnight(start).micros();
        let changes = [
            (t(s + day / 2), q("5")),  // day 1 noon: 2 -> 5
            (t(s + day), q("3")),      // day 2 midnight: 3
            (t(s + day + 10), q("9")), // day 2: 9, overtaken at the same instant
            (t(s + day + 10), q("4")), // ... by 4
        ];
        let usage = daily_usage(q("2"), &changes, start, 3);
        let rows: Vec<_> = usage
            .days
            .iter()
            .map(|d| {
                (
                    d.date.to_string(),
                    d.max_quantity.to_string(),
                    d.end_quantity.to_string(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("2024-03-01".into(), "5".into(), "5".into()),
                ("2024-03-02".into(), "4".into(), "4".into()),
                ("2024-03-03".into(), "4".into(), "4".into()),
            ]
        );
        assert_eq!(usage.max_quantity_days, Decimal::from(13));
        // 2×43200 + 5×43200 + 3×0.00001 + 4×(86400 − 0.00001) + 4×86400
        assert_eq!(usage.quantity_seconds.to_string(), "993599.99999");
    }

    /// The integral can need 12 decimals; it is reported with a quantity's 6, half to even.
    #[test]
    fn quantity_seconds_are_rounded_half_to_even_to_six_decimals() {
        let start = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let s = Timestamp::midnight(start).micros();
        // 0.000001 from half a second past midnight: 0.000001 × 86399.5 = 0.0863995.
        let usage = daily_usage(Quantity::ZERO, &[(t(s + 500_000), q("0.000001"))], start, 1);
        assert_eq!(usage.quantity_seconds.to_string(), "0.0864");
        // 0.5 for the day's last microsecond: 0.0000005, which rounds to 0.
        let usage = daily_usage(
            Quantity::ZERO,
            &[(t(s + MICROS_PER_DAY - 1), q("0.5"))],
            start,
            1,
        );
        assert_eq!(usage.quantity_seconds.to_string(), "0");
    }

    /// The ledger as storage keeps it with shifts: stored quantities and the shifts over them.
    #[derive(Default, Clone)]
    struct ShiftedLedger {
        /// In ledger order; `absolute` is the stored quantity, less the covering shifts.
        entries: Vec<(StoredEntry, Decimal)>,
        shifts: Vec<Shift>,
        next_seq: i64,
        rewritten: usize,
    }

    impl ShiftedLedger {
        fn true_entry(&self, (entry, stored): &(StoredEntry, Decimal)) -> StoredEntry {
            let absolute = shifted(*stored, entry.position(), &self.shifts).unwrap();
            StoredEntry {
                absolute,
                ..entry.clone()
            }
        }

        fn insert(
            &mut self,
            at: i64,
            kind: UpdateType,
            given: Quantity,
        ) -> Result<Quantity, LedgerError> {
            let position = self
                .entries
                .partition_point(|(e, _)| e.effective_from.micros() <= at);
            let prior = position.checked_sub(1).map_or(Quantity::ZERO, |i| {
                self.true_entry(&self.entries[i]).absolute
            });
            let later: Vec<_> = (self.entries[position..].iter())
                .map(|e| self.true_entry(e))
                .collect();
            let (later, next_absolute) = later_of(&later);
            let plan = plan_insertion(
                prior,
                (t(at), kind, given),
                &later,
                next_absolute,
                &self.shifts,
            )?;
            for (seq, stored) in &plan.rewrites {
                let entry = self
                    .entries
                    .iter_mut()
                    .find(|(e, _)| e.seq == *seq)
                    .unwrap();
                entry.1 = *stored;
                self.rewritten += 1;
            }
            self.next_seq += 1;
            let entry = StoredEntry {
                seq: self.next_seq,
                effective_from: t(at),
                update_type: kind,
                absolute: Quantity::ZERO,
            };
            self.entries.insert(position, (entry, plan.stored));
            self.shifts.extend(plan.shift);
            if must_fold(self.shifts.len()) {
                let stored: Vec<_> = (self.entries.iter())
                    .map(|(e, s)| (e.position(), *s))
                    .collect();
                for (seq, stored) in fold(&stored, &self.shifts) {
                    let entry = self.entries.iter_mut().find(|(e, _)| e.seq == seq).unwrap();
                    entry.1 = stored;
                }
                self.shifts.clear();
            }
            Ok(plan.absolute)
        }

        fn at_end(&self) -> Quantity {
            self.true_entry(self.entries.last().unwrap()).absolute
        }

        fn absolutes(&self) -> Vec<(i64, Quantity)> {
            (self.entries.iter())
                .map(|e| (e.0.seq, self.true_entry(e).absolute))
                .collect()
        }

        /// A ledger of `count` RELATIVE +1 entries, at 10, 20, 30…
        fn of_ones(count: i64) -> Self {
            let mut ledger = Self::default();
            for at in 1..=count {
                (ledger.insert(at * 10, UpdateType::Relative, q("1"))).unwrap();
            }
            ledger
        }

        /// The true quantities in ledger order, as text.
        fn absolute_texts(&self) -> Vec<String> {
            (self.absolutes().iter())
                .map(|(_, a)| a.to_string())
                .collect()
        }
    }

    #[test]
    fn a_backdated_entry_before_many_records_a_shift_instead_of_rewriting_them() {
        let mut ledger = ShiftedLedger::of_ones(20);
        ledger.insert(105, UpdateType::Absolute, q("3")).unwrap();
        assert_eq!(ledger.insert(5, UpdateType::Relative, q("2")), Ok(q("2")));
        // The ABSOLUTE entry at 105 shifted the ten after it; this entry, the ten before it.
        assert_eq!(ledger.rewritten, 0);
        assert_eq!(ledger.shifts.len(), 2);
        let shift = &ledger.shifts[1];
        assert_eq!(
            (shift.from.at, shift.to.at, shift.delta),
            (5, 105, Decimal::TWO)
        );
        let expected: Vec<_> = (2..=12).chain(3..=13).map(|n| n.to_string()).collect();
        assert_eq!(ledger.absolute_texts(), expected);
        // Few later entries: rewritten as before.
        ledger.insert(195, UpdateType::Relative, q("1")).unwrap();
        assert_eq!((ledger.rewritten, ledger.shifts.len()), (1, 2));
    }

    #[test]
    fn an_absolute_entry_inside_a_shifted_range_shifts_what_follows_it() {
        let mut ledger = ShiftedLedger::of_ones(30);
        ledger.insert(5, UpdateType::Relative, q("100")).unwrap();
        ledger.insert(55, UpdateType::Absolute, q("7")).unwrap();
        assert_eq!(ledger.shifts.len(), 2);
        let expected: Vec<_> = (100..=105).chain(7..=32).map(|n| n.to_string()).collect();
        assert_eq!(ledger.absolute_texts(), expected);
        // A later entry inside both ranges is stored less both shifts, and reads true.
        assert_eq!(
            ledger.insert(300, UpdateType::Relative, q("1")),
            Ok(q("33"))
        );
    }

    #[test]
    fn a_write_that_would_make_a_shifted_quantity_negative_is_refused() {
        let mut ledger = ShiftedLedger::default();
        ledger.insert(10, UpdateType::Absolute, q("10")).unwrap();
        for at in 2..=20 {
            let given = if at == 15 { q("-10") } else { Quantity::ZERO };
            ledger.insert(at * 10, UpdateType::Relative, given).unwrap();
        }
        assert_eq!(ledger.insert(11, UpdateType::Relative, q("2")), Ok(q("12")));
        assert_eq!(ledger.shifts.len(), 1);
        let before = (ledger.absolutes(), ledger.shifts.clone());
        assert_eq!(
            ledger.insert(12, UpdateType::Relative, q("-3")),
            Err(LedgerError::NegativeAt(t(150)))
        );
        assert_eq!(
            ledger.insert(12, UpdateType::Absolute, q("9")),
            Err(LedgerError::NegativeAt(t(150)))
        );
        assert_eq!((ledger.absolutes(), ledger.shifts.clone()), before);
        assert_eq!(
            ledger.insert(12, UpdateType::Relative, q("-2")),
            Ok(q("10"))
        );
        assert_eq!(ledger.at_end(), Quantity::ZERO);
    }

    #[test]
    fn more_than_the_most_shifts_are_folded_into_the_stored_quantities() {
        let mut ledger = ShiftedLedger::default();
        let mut accepted = Vec::new();
        for at in 1..=20 {
            ledger
                .insert(1000 + at, UpdateType::Relative, q("1"))
                .unwrap();
            accepted.push((1000 + at, ledger.next_seq, UpdateType::Relative, q("1")));
        }
        for n in 0..(MOST_SHIFTS as i64 + 5) {
            let at = 999 - n;
            ledger.insert(at, UpdateType::Relative, q("2")).unwrap();
            accepted.push((at, ledger.next_seq, UpdateType::Relative, q("2")));
            assert!(ledger.shifts.len() <= MOST_SHIFTS);
            assert_eq!(Some(ledger.absolutes()), reference(&accepted));
        }
        assert_eq!(ledger.shifts.len(), 4);
    }

    fn update_type() -> impl Strategy<Value = UpdateType> {
        prop_oneof![Just(UpdateType::Relative), Just(UpdateType::Absolute)]
    }

    fn quantity() -> impl Strategy<Value = Quantity> {
        (-500i64..1000, 0u32..3)
            .prop_map(|(n, scale)| Quantity::new(Decimal::new(n, scale)).unwrap())
    }

    proptest! {
        /// Inserting entries one by one in any order (backdated, future-dated, at equal
        /// instants) gives exactly what recomputing the whole ledger gives, and refuses
        /// exactly the writes after which some quantity would be negative.
        #[test]
        fn incremental_resolution_matches_recomputing_everything(
            writes in prop::collection::vec((0i64..12, update_type(), quantity()), 1..40)
        ) {
            let mut ledger = Ledger::default();
            let mut accepted: Vec<(i64, i64, UpdateType, Quantity)> = Vec::new();
            for (at, kind, given) in writes {
                let mut candidate = accepted.clone();
                candidate.push((at, ledger.next_seq + 1, kind, given));
                let expected = reference(&candidate);
                let result = ledger.insert(at, kind, given);
                prop_assert_eq!(result.is_ok(), expected.is_some(), "write at {} {:?} {}", at, kind, given);
                if let Some(expected) = expected {
                    accepted = candidate;
                    let actual: Vec<_> = ledger.entries.iter().map(|e| (e.seq, e.absolute)).collect();
                    prop_assert_eq!(actual, expected);
                }
            }
        }

        /// With shifts, backdated writes before many entries give what recomputing the
        /// whole ledger gives, refuse what it refuses, and keep at most the most shifts.
        #[test]
        fn shifted_resolution_matches_recomputing_everything(
            writes in prop::collection::vec((0i64..60, update_type(), quantity()), 1..120)
        ) {
            let mut ledger = ShiftedLedger::default();
            let mut accepted: Vec<(i64, i64, UpdateType, Quantity)> = Vec::new();
            for (at, kind, given) in writes {
                // Mostly after the entries so far, often far before them.
                let at = if at % 3 == 0 { at } else { 1000 + accepted.len() as i64 };
                let mut candidate = accepted.clone();
                candidate.push((at, ledger.next_seq + 1, kind, given));
                let expected = reference(&candidate);
                let result = ledger.insert(at, kind, given);
                prop_assert_eq!(result.is_ok(), expected.is_some(), "write at {} {:?} {}", at, kind, given);
                if let Some(expected) = expected {
                    accepted = candidate;
                    prop_assert_eq!(ledger.absolutes(), expected);
                }
                prop_assert!(ledger.shifts.len() <= MOST_SHIFTS);
            }
        }

        /// Daily maxima and ends agree with sampling the quantity at every instant.
        #[test]
        fn daily_usage_matches_sampling(
            writes in prop::collection::vec((0i64..96, update_type(), 0i64..50), 0..30),
            initial in 0i64..20,
        ) {
            // Four days of 24 "hours" of one microsecond each keep sampling exhaustive.
            let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
            let s = Timestamp::midnight(start).micros();
            let hour = MICROS_PER_DAY / 24;
            let mut changes: Vec<(Timestamp, Quantity)> = writes.iter()
                .filter(|(h, _, _)| *h > 0)
                .map(|(h, _, n)| (t(s + h * hour), Quantity::new(Decimal::from(*n)).unwrap()))
                .collect();
            changes.sort_by_key(|(at, _)| *at);
            let usage = daily_usage(Quantity::new(Decimal::from(initial)).unwrap(), &changes, start, 4);
            let at = |micros: i64| changes.iter().rev().find(|(c, _)| c.micros() <= micros)
                .map_or(Quantity::new(Decimal::from(initial)).unwrap(), |(_, q)| *q);
            for (day, row) in usage.days.iter().enumerate() {
                let first = s + day as i64 * MICROS_PER_DAY;
                let samples: Vec<_> = (0..24).map(|h| at(first + h * hour)).collect();
                prop_assert_eq!(row.max_quantity, *samples.iter().max().unwrap());
                prop_assert_eq!(row.end_quantity, samples[23]);
            }
            let integral: Decimal = (0..96).map(|h| at(s + h * hour).decimal() * Decimal::from(3600)).sum();
            prop_assert_eq!(usage.quantity_seconds, integral.normalize());
        }
    }
}
