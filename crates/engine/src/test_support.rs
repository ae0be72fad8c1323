//! What the unit tests share.

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
