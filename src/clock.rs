//! The clock the controller and the HTTP API read; tests move it by hand.

use jiff::Timestamp;

/// The clock the controller reads; tests move it by hand.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
