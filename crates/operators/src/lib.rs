//! fengine's extensions to DataFusion, and nothing else: what fengine computes that
//! DataFusion's own operators compute slowly or not at all. It knows no catalog, online
//! store or command line; the engine plans with these and publishes what they compute.
//!
//! - [`window`]: rolling `RANGE` windows in one pass over sorted rows ([`RangeWindowExec`],
//!   put in place of DataFusion's window operator by [`RangeWindowRule`]).
//! - [`asof`]: the point-in-time join of training sets ([`AsOfJoinExec`]).
//! - [`sweep`]: a window aggregate's snapshots at every as-of of a backfill, in one pass
//!   over its source ([`Sweep`]), for the queries [`SweepQuery`] recognises.
//! - [`functions`]: `as_of()` and `param('name')`, folded to literals while planning.
//! - [`timestamps`]: times as the operators compare them, in whole ticks of a unit.
//!
//! ```
//! use std::sync::Arc;
//!
//! use datafusion::execution::session_state::SessionStateBuilder;
//! use datafusion::prelude::SessionContext;
//! use fengine_operators::window::{RangeWindowRule, WindowFilterRule};
//!
//! let state = SessionStateBuilder::new()
//!     .with_default_features()
//!     .with_optimizer_rule(Arc::new(WindowFilterRule))
//!     .with_physical_optimizer_rule(Arc::new(RangeWindowRule))
//!     .build();
//! let context = SessionContext::new_with_state(state);
//! ```
//!
//! [`RangeWindowExec`]: window::RangeWindowExec
//! [`RangeWindowRule`]: window::RangeWindowRule
//! [`AsOfJoinExec`]: asof::AsOfJoinExec
//! [`Sweep`]: sweep::Sweep
//! [`SweepQuery`]: sweep::SweepQuery

pub mod asof;
pub mod functions;
mod sliding;
pub mod sweep;
#[cfg(test)]
mod test_support;
pub mod timestamps;
pub mod window;
