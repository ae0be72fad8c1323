//! Test doubles shared by fengine's tests and benchmarks, on loopback only.
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
