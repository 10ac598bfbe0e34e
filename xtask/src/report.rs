//! Reading test output: cargo's per-binary summaries and the test kernel's serial lines.

/// Outcome of one in-kernel test, as printed by the test kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed(String),
}

/// One `test NAME ... ok` / `test NAME ... FAILED: reason` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTest {
    pub name: String,
    pub outcome: Outcome,
}

/// Parses a test-kernel result line. A test line may be split by log output printed while the
/// test ran, so the verdict is whatever follows the last ` ... ` on the line.
pub fn parse_kernel_test_line(line: &str) -> Option<KernelTest> {
    let rest = line.strip_prefix("test ")?;
    let (name, verdict) = rest.split_once(" ... ")?;
    let outcome = if verdict.starts_with("ok") {
        Outcome::Ok
    } else {
        let reason = verdict.strip_prefix("FAILED")?;
        Outcome::Failed(reason.trim_start_matches(':').trim().to_string())
    };
    Some(KernelTest {
        name: name.to_string(),
        outcome,
    })
}

/// What a test kernel's serial log says about its suite.
#[derive(Debug, Default)]
pub struct SuiteLog {
    /// Tests the suite announced (`suite NAME: running N tests`).
    pub announced: Option<usize>,
    pub results: Vec<KernelTest>,
}

impl SuiteLog {
    /// Tests that passed.
    pub fn passed(&self) -> usize {
        self.results
            .iter()
            .filter(|t| t.outcome == Outcome::Ok)
            .count()
    }

    /// Tests that failed, counting announced tests that never reported (the kernel died or
    /// hung before their verdict).
    pub fn failed(&self) -> usize {
        let reported_failures = self.results.len() - self.passed();
        reported_failures + self.missing()
    }

    /// Announced tests without a verdict.
    pub fn missing(&self) -> usize {
        self.announced
            .unwrap_or(0)
            .saturating_sub(self.results.len())
    }
}

/// Collects the suite announcement and every test verdict in a serial log.
pub fn parse_kernel_log(log: &str) -> SuiteLog {
    let mut suite = SuiteLog::default();
    for line in log.lines() {
        if let Some(result) = parse_kernel_test_line(line) {
            suite.results.push(result);
        } else if let Some((_, rest)) = line
            .strip_prefix("suite ")
            .and_then(|r| r.split_once(": running "))
        {
            suite.announced = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    suite
}

/// Sums `test result: ok. N passed; M failed; ...` lines of `cargo test` output.
pub fn parse_cargo_test_summaries(output: &str) -> (usize, usize) {
    let mut passed = 0;
    let mut failed = 0;
    for line in output.lines() {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            continue;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let (count, what) = match words.as_slice() {
                [.., count, what] => (count.parse::<usize>().ok(), *what),
                _ => continue,
            };
            match (count, what) {
                (Some(n), "passed") => passed += n,
                (Some(n), "failed") => failed += n,
                _ => {}
            }
        }
    }
    (passed, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ok_and_failed_lines() {
        assert_eq!(
            parse_kernel_test_line("test heap::grows ... ok (3 ms)"),
            Some(KernelTest {
                name: "heap::grows".into(),
                outcome: Outcome::Ok
            })
        );
        assert_eq!(
            parse_kernel_test_line("test frames::x ... FAILED: 1 != 2"),
            Some(KernelTest {
                name: "frames::x".into(),
                outcome: Outcome::Failed("1 != 2".into())
            })
        );
        assert_eq!(
            parse_kernel_test_line("suite core: 1 passed, 0 failed"),
            None
        );
        assert_eq!(parse_kernel_test_line("test x ... "), None);
    }

    #[test]
    fn announced_tests_without_verdict_count_as_failed() {
        let log = "suite core: running 3 tests\n[ 0.1 c0 WARN ] breakpoint\ntest a ... ok (1 ms)\n\
                   !!! FATAL CPU EXCEPTION\n";
        let suite = parse_kernel_log(log);
        assert_eq!(suite.announced, Some(3));
        assert_eq!(suite.passed(), 1);
        assert_eq!(suite.missing(), 2);
        assert_eq!(suite.failed(), 2);
    }

    #[test]
    fn failures_are_counted() {
        let log = "suite s: running 2 tests\ntest a ... FAILED: no\ntest b ... ok (0 ms)\n";
        let suite = parse_kernel_log(log);
        assert_eq!((suite.passed(), suite.failed()), (1, 1));
    }

    #[test]
    fn sums_cargo_summaries() {
        let output = "running 2 tests\n\
            test result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
            test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(parse_cargo_test_summaries(output), (5, 1));
        assert_eq!(parse_cargo_test_summaries("nothing here"), (0, 0));
    }
}
