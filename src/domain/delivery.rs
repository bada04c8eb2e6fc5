//! How webhook messages are delivered: what an attempt got, when the next one is due,
//! and when a message has failed for good.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ids::{MessageId, WebhookId};
use super::time::{Timestamp, parse_wait};
use super::webhooks::EventType;

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Not delivered yet: its next attempt is due at `next_attempt_at`.
    Pending,
    Delivered,
    /// Every attempt of the schedule failed, or the endpoint answered 410.
    Failed,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What one attempt got: the endpoint's status code, or why there was no answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptLog {
    pub at: Timestamp,
    #[serde(default)]
    pub status_code: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
}

/// A message as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its place in the outbox: its endpoint's order, and the key its attempts are
    /// recorded by.
    pub seq: i64,
    pub id: MessageId,
    pub endpoint_id: WebhookId,
    pub event_type: EventType,
    pub body: String,
    pub created_at: Timestamp,
    pub status: MessageStatus,
    /// Failed attempts in the current schedule.
    pub tries: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub attempts: Vec<AttemptLog>,
}

/// The outcome of one attempt, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The message's [`Message::seq`].
    pub seq: i64,
    pub log: AttemptLog,
    pub status: MessageStatus,
    pub tries: u32,
    pub next_attempt_at: Option<Timestamp>,
}

/// The waits between a message's attempts: after the first failed attempt, the first
/// wait, and so on; once they are used up, the message has failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl Default for RetrySchedule {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h: eight attempts over about 27 hours.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self(vec![
            Duration::from_secs(5),
            minutes(5),
            minutes(30),
            minutes(120),
            minutes(300),
            minutes(600),
            minutes(600),
        ])
    }
}

impl RetrySchedule {
    /// Reads `5s,5m,30m,2h,…`: waits in `ms`, `s`, `m` or `h`, at least one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let waits = text
            .split(',')
            .map(|part| parse_wait(part.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(waits))
    }

    /// How many attempts a message gets.
    pub fn attempts(&self) -> u32 {
        self.0.len() as u32 + 1
    }

    /// What a failed attempt at `now` leaves: the message's status, its failed tries, and
    /// when the next attempt is due. A 410 (`gone`) fails it at once.
    pub fn after_failure(
        &self,
        tries_before: u32,
        gone: bool,
        now: Timestamp,
    ) -> (MessageStatus, u32, Option<Timestamp>) {
        let tries = tries_before + 1;
        match self.0.get(tries_before as usize) {
            Some(wait) if !gone => {
                let next = now
                    .plus_micros(wait.as_micros() as i64)
                    .unwrap_or(Timestamp::LAST);
                (MessageStatus::Pending, tries, Some(next))
            }
            _ => (MessageStatus::Failed, tries, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_gives_eight_attempts_then_fails() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 8);
        let now = Timestamp::from_micros(0).unwrap();
        let (status, tries, next) = schedule.after_failure(0, false, now);
        assert_eq!((status, tries), (MessageStatus::Pending, 1));
        assert_eq!(next, Timestamp::from_micros(5_000_000));
        let (_, _, next) = schedule.after_failure(6, false, now);
        assert_eq!(next, Timestamp::from_micros(36_000_000_000));
        assert_eq!(
            schedule.after_failure(7, false, now),
            (MessageStatus::Failed, 8, None)
        );
        assert_eq!(
            schedule.after_failure(0, true, now),
            (MessageStatus::Failed, 1, None)
        );
    }

    #[test]
    fn a_schedule_is_read_from_waits_with_units() {
        assert_eq!(
            RetrySchedule::parse("5s,5m,30m,2h,5h,10h,10h"),
            Ok(RetrySchedule::default())
        );
        assert_eq!(
            RetrySchedule::parse("50ms").unwrap().0,
            [Duration::from_millis(50)]
        );
        for bad in ["", "5", "5 days", "s", "-5s", "9999h"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }
}
