//! Test harness: runs the real noc-sim binary in a private directory and
//! kills it on drop, so no router outlives a failed test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use noc_sim::client::FakeCluster;

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub struct Sim {
    pub dir: PathBuf,
    pub child: Option<Child>,
}

impl Sim {
    pub fn start(clusters: u16, extra: &[&str]) -> Sim {
        let dir = std::env::temp_dir().join(format!(
            "noc-sim-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("sim.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_noc-sim"))
            .arg("--clusters")
            .arg(clusters.to_string())
            .arg("--dir")
            .arg(&dir)
            .arg("--control")
            .arg(dir.join("ctl.sock"))
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn noc-sim");
        let sim = Sim {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sim.dir.join("ctl.sock").exists() {
            assert!(
                Instant::now() < deadline,
                "noc-sim did not start: {}",
                sim.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        sim
    }

    pub fn sock(&self, k: u16) -> PathBuf {
        self.dir.join(format!("c{k}.sock"))
    }

    pub fn connect(&self, k: u16) -> FakeCluster {
        FakeCluster::connect(&self.sock(k), 1)
            .unwrap_or_else(|e| panic!("cluster {k}: {e:#}\n{}", self.log()))
    }

    pub fn control(&self, cmd: &str) -> String {
        noc_sim::control::request(&self.dir.join("ctl.sock"), cmd).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sim.log")).unwrap_or_default()
    }

    /// Waits for the router to exit by itself; returns its success.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<bool> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return Some(st.success());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("noc-sim log ({}):\n{}", self.dir.display(), self.log());
        }
    }
}

/// Extracts `"key":number` from cluster `id`'s object in a stats reply.
pub fn cluster_stat(stats: &str, id: u16, key: &str) -> u64 {
    let start = stats
        .find(&format!("{{\"id\":{id},"))
        .unwrap_or_else(|| panic!("no cluster {id} in {stats}"));
    let obj = &stats[start..start + stats[start..].find('}').unwrap()];
    let at = obj
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("no {key} in {obj}"))
        + key.len()
        + 3;
    let digits: String = obj[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap()
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
