//! Counting checks and reporting the failed ones: what the test programs print.

use crate::println;
use core::fmt::Debug;

pub struct Checks {
    program: &'static str,
    passed: u32,
    failed: u32,
}

impl Checks {
    pub fn new(program: &'static str) -> Self {
        Checks {
            program,
            passed: 0,
            failed: 0,
        }
    }

    /// Counts one check; prints it if it failed.
    pub fn check(&mut self, what: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!("{}: FAILED: {what}", self.program);
        }
    }

    /// Checks `got == want`; prints both if not.
    pub fn expect<T: PartialEq + Debug>(&mut self, what: &str, got: T, want: T) {
        if got == want {
            self.passed += 1;
        } else {
            self.failed += 1;
            println!(
                "{}: FAILED: {what}: got {got:?}, expected {want:?}",
                self.program
            );
        }
    }

    /// Prints the closing line; the exit status (0 only if every check passed).
    pub fn finish(&self) -> u64 {
        if self.failed == 0 {
            println!("{}: all {} checks passed", self.program, self.passed);
            0
        } else {
            println!(
                "{}: {} of {} checks FAILED",
                self.program,
                self.failed,
                self.passed + self.failed
            );
            1
        }
    }
}
