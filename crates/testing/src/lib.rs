//! Test doubles shared by fengine's tests and benchmarks, on loopback only, and a seeded
//! generator of test data.
//!
//! ```no_run
//! use fengine_testing::{Faults, FaultyDynamoDb};
//!
//! let server = FaultyDynamoDb::start(Faults { unprocessed_percent: 20, throttled_percent: 10 }, "id");
//! println!("point the DynamoDB client at {}", server.endpoint);
//! ```

mod faulty_dynamodb;
mod refusing_endpoint;

pub use faulty_dynamodb::{Counts, Faults, FaultyDynamoDb};
pub use refusing_endpoint::RefusingEndpoint;

/// A small deterministic generator of test data, so that failures repeat.
pub struct XorShift(pub u64);

impl XorShift {
    /// The next value, below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
