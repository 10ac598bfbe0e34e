//! Host tests of the slice layout and control block.

extern crate std;
use super::*;

#[test]
fn default_layout_numbers() {
    let l = Layout::new(DEFAULT_SHM_SIZE).unwrap();
    assert_eq!(l.slice_size(), 2 << 20);
    assert_eq!(l.ring_capacity(), 1_046_528);
    assert_eq!(l.tx_data_offset() + l.ring_capacity(), l.slice_size());
    assert_eq!(l.slice_offset(ClusterId(3)), 6 << 20);
    assert!(Layout::new(3 << 20).is_err());
    assert!(Layout::new(4 << 20).is_err());
    assert!(Layout::new(2 << 30).is_err());
}

#[test]
fn init_then_validate() {
    let l = Layout::new(MIN_SHM_SIZE).unwrap();
    let mut mem = std::vec![0u64; l.shm_size() / 8 + 512];
    let base = mem.as_mut_ptr() as *mut u8;
    let base = base.wrapping_add(base.align_offset(4096));
    // SAFETY: `mem` holds shm_size bytes past the 4 KiB-aligned base.
    let s = unsafe { Slice::in_region(base, l, ClusterId(5)) }.unwrap();
    assert_eq!(
        s.control().validate(&l, ClusterId(5)),
        Err(LayoutError::NotReady(0))
    );
    s.init(ClusterId(5), 16, 1);
    let info = s.control().validate(&l, ClusterId(5)).unwrap();
    assert_eq!(info.cluster_count, 16);
    assert_eq!(info.router_peer_id, 32);
    assert!(matches!(
        s.control().validate(&l, ClusterId(4)),
        Err(LayoutError::Mismatch { .. })
    ));
    s.control().set_live_clusters(0b101);
    assert_eq!(s.control().live_clusters(), 0b101);
    assert_eq!(s.control().epoch(), 1);
    s.tx().try_push_record(b"hi").unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(s.tx().pop_into(&mut buf), Ok(Some(2)));
    assert!(s.rx().is_empty());
}
