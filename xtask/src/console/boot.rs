//! The boot progress line of a console session (`clusters booted 12/16`): booting 16
//! clusters under TCG takes tens of seconds, and without it the terminal looks hung.
//!
//! Fed every console line as it arrives, it counts each cluster once, at its boot banner
//! (the line [`crate::cluster::is_banner`] recognises), whatever else the clusters print and
//! in whatever order their lines interleave.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};

/// The bar's text: `⠁ clusters booted 12/16 00:00:07`.
const TEMPLATE: &str = "{spinner} clusters booted {pos}/{len} {elapsed_precise} {msg}";

pub struct BootProgress {
    bar: ProgressBar,
    /// Which clusters printed their banner, index = cluster.
    booted: Mutex<Vec<bool>>,
    /// How many must boot before the console starts (a cluster under gdb waits halted).
    expected: usize,
}

impl BootProgress {
    /// Progress of `clusters` clusters on `bar`, done once `expected` of them booted.
    pub fn new(bar: ProgressBar, clusters: usize, expected: usize) -> BootProgress {
        // The style first: setting the length draws, in the default style otherwise.
        bar.set_style(
            ProgressStyle::with_template(TEMPLATE).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_length(clusters as u64);
        BootProgress {
            bar,
            booted: Mutex::new(vec![false; clusters]),
            expected,
        }
    }

    /// A console line of cluster `k` (noc-sim's lines and unknown clusters are ignored).
    pub fn line(&self, k: usize, line: &str) {
        if !crate::cluster::is_banner(line) {
            return;
        }
        let Ok(mut booted) = self.booted.lock() else {
            return;
        };
        if let Some(seen) = booted.get_mut(k).filter(|seen| !**seen) {
            *seen = true;
            self.bar.inc(1);
        }
    }

    pub fn booted(&self) -> usize {
        self.booted
            .lock()
            .map_or(0, |b| b.iter().filter(|seen| **seen).count())
    }

    pub fn done(&self) -> bool {
        self.booted() >= self.expected
    }

    /// Redraws (the spinner and the elapsed time move while nothing boots).
    pub fn tick(&self) {
        self.bar.tick();
    }

    pub fn bar(&self) -> &ProgressBar {
        &self.bar
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use indicatif::{ProgressBar, ProgressDrawTarget, TermLike};

    use super::BootProgress;

    /// A terminal that keeps what is drawn on it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<String>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What cluster k prints while it boots: the bootloader's lines, the banner, its log.
    fn boot_lines(k: usize) -> Vec<String> {
        vec![
            "BIOS boot".into(),
            format!("Tessera 0.1.0 microkernel - cluster {k} of 16 - 248 MiB usable memory, 62326 frames free, heap 4096 KiB"),
            format!("[    1.20000{k} c{k} INFO ] noc: joined"),
        ]
    }

    /// Lets the bar's rate limiter allow a draw, draws, and takes what was drawn since the
    /// last call.
    fn drawn(progress: &BootProgress, screen: &Screen) -> String {
        std::thread::sleep(Duration::from_millis(150));
        progress.tick();
        std::mem::take(&mut *screen.0.lock().unwrap())
    }

    #[test]
    fn sixteen_clusters_counted_once_each_from_interleaved_lines() {
        let screen = Screen::default();
        let bar = ProgressBar::with_draw_target(
            None,
            ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        let progress = BootProgress::new(bar, 16, 16);
        assert!(drawn(&progress, &screen).contains("clusters booted 0/16"));
        // Clusters 0..12 boot, their lines interleaved, one banner repeated, noc-sim talking.
        let lines: Vec<Vec<String>> = (0..12).map(boot_lines).collect();
        for i in 0..3 {
            for (k, mine) in lines.iter().enumerate() {
                progress.line(k, &mine[i]);
            }
        }
        progress.line(3, &lines[3][1]);
        progress.line(crate::cluster::NOC_LINE, "Tessera noc-sim: 16 clusters");
        progress.line(2, "[p0.1 hello] Tessera is not a banner here");
        assert_eq!(progress.booted(), 12);
        assert!(!progress.done());
        let text = drawn(&progress, &screen);
        assert!(text.contains("clusters booted 12/16"), "{text}");
        for k in 12..16 {
            for line in boot_lines(k) {
                progress.line(k, &line);
            }
        }
        assert!(progress.done());
        let text = drawn(&progress, &screen);
        assert!(text.contains("clusters booted 16/16"), "{text}");
    }

    #[test]
    fn a_cluster_under_gdb_is_not_waited_for() {
        let progress = BootProgress::new(ProgressBar::hidden(), 16, 15);
        for k in (0..16).filter(|k| *k != 5) {
            progress.line(k, &boot_lines(k)[1]);
        }
        assert_eq!(progress.booted(), 15);
        assert!(progress.done());
        assert_eq!(progress.bar().position(), 15);
        assert_eq!(progress.bar().length(), Some(16));
    }
}
