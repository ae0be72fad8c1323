//! What the unit tests share.

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};

/// A small deterministic generator of test data, so that failures repeat.
pub(crate) struct XorShift(pub u64);

impl XorShift {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A finite double as an exact integer multiple of 2^-1074.
pub(crate) fn exact(value: f64) -> BigInt {
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = bits & ((1 << 52) - 1);
    let (mantissa, shift) = match biased {
        0 => (fraction, 0),
        _ => (fraction | (1 << 52), biased - 1),
    };
    let magnitude = BigInt::from(mantissa) << shift;
    if value < 0.0 { -magnitude } else { magnitude }
}

/// `numerator / denominator * 2^exponent` as a double, rounded from 64 bits.
pub(crate) fn to_f64(numerator: &BigInt, denominator: &BigInt, exponent: i64) -> f64 {
    if numerator.is_zero() {
        return 0.0;
    }
    let shift = denominator.bits() as i64 - numerator.bits() as i64 + 64;
    let quotient = if shift >= 0 {
        (numerator << shift) / denominator
    } else {
        numerator / (denominator << -shift)
    };
    let mut value = quotient.to_f64().expect("64 bits fit a double");
    let mut exponent = exponent - shift;
    while exponent != 0 {
        let step = exponent.clamp(-1000, 1000);
        value *= 2f64.powi(step as i32);
        exponent -= step;
    }
    value
}

/// Variance or standard deviation in exact arithmetic, rounded once at the end.
pub(crate) fn exact_spread(values: &[f64], root: bool, population: bool) -> f64 {
    let n = values.len() as i64;
    let sum: BigInt = values.iter().map(|&v| exact(v)).sum();
    let squares: BigInt = values.iter().map(|&v| exact(v) * exact(v)).sum();
    // n * sum of squared deviations, in units of 2^-2148.
    let scaled = BigInt::from(n) * squares - &sum * &sum;
    assert!(!scaled.is_negative());
    let divisor = BigInt::from(n * if population { n } else { n - 1 });
    if !root {
        return to_f64(&scaled, &divisor, -2148);
    }
    // sqrt(q * 2^-2148) with q scaled to 2^128 or more, so its root keeps 64 bits.
    let shift = (128 - (scaled.bits() as i64 - divisor.bits() as i64)).max(0) & !1;
    let quotient = (scaled << shift) / divisor;
    to_f64(&quotient.sqrt(), &BigInt::from(1), -(2148 + shift) / 2)
}

/// The sum of finite doubles in exact arithmetic, rounded once at the end.
pub(crate) fn exact_sum(values: &[f64]) -> f64 {
    let sum: BigInt = values.iter().map(|&v| exact(v)).sum();
    let negative = sum.is_negative();
    let magnitude = to_f64(&sum.abs(), &BigInt::from(1), -1074);
    if negative { -magnitude } else { magnitude }
}
