//! Reading one CPU's BPF ring buffer: every record waiting is taken, then the consumer position
//! is published once.
//!
//! Publishing the position after every record (as `aya::maps::RingBuf` and libbpf do) writes a
//! cache line that the producing CPU reads on every reserve and commit, so a drain that overlaps
//! with traffic moves that line between the CPUs once per event. Once per drain it moves once.
//! The kernel reuses a record's memory only after the position has passed it, so the records
//! read are stable until then.

use aya::maps::MapData;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes of a record's header (`BPF_RINGBUF_HDR_SZ`): the length word and a page offset.
const HDR: u64 = 8;
/// The producer is still writing the record (`BPF_RINGBUF_BUSY_BIT`).
const BUSY: u32 = 1 << 31;
/// The producer discarded the record (`BPF_RINGBUF_DISCARD_BIT`).
const DISCARD: u32 = 1 << 30;

/// A shared mapping, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: i32, offset: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of the ring's fd at an offset the kernel defines; the
        // result is checked before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` are exactly what mmap returned and was given.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// The consumer side of one BPF ring buffer map.
pub struct RingReader {
    map: MapData,
    /// The consumer page (read-write): the consumer position at offset 0.
    consumer: Mapping,
    /// The producer page, then the data pages mapped twice (read-only).
    producer: Mapping,
    page: usize,
    mask: u64,
    pos: u64,
}

// SAFETY: the mappings are owned by the reader and only touched through `&mut self`.
unsafe impl Send for RingReader {}

impl RingReader {
    /// Maps a ring buffer map of `bytes` (a power of two) for reading.
    pub fn new(map: MapData, bytes: u32) -> io::Result<RingReader> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        // The kernel maps the data pages twice in a row, so a record that wraps around the end
        // reads as one slice.
        let producer = Mapping::new(fd, page + 2 * bytes as usize, libc::PROT_READ, page)?;
        let mut reader = RingReader {
            map,
            consumer,
            producer,
            page,
            mask: u64::from(bytes) - 1,
            pos: 0,
        };
        reader.pos = reader.consumer_pos().load(Ordering::Acquire);
        Ok(reader)
    }

    fn consumer_pos(&self) -> &AtomicU64 {
        // SAFETY: the consumer page is page-aligned, mapped while `self` lives, and the kernel
        // keeps the position in its first 8 bytes.
        unsafe { &*self.consumer.ptr.cast::<AtomicU64>() }
    }

    fn producer_pos(&self) -> &AtomicU64 {
        // SAFETY: as above, for the producer page.
        unsafe { &*self.producer.ptr.cast::<AtomicU64>() }
    }

    /// Calls `take` with each record committed so far, in order, until `take` returns false or
    /// no committed record is left; then publishes the new consumer position. Returns the number
    /// of records taken.
    pub fn drain(&mut self, mut take: impl FnMut(&[u8]) -> bool) -> usize {
        let end = self.producer_pos().load(Ordering::Acquire);
        let data = self.page as u64;
        let mut pos = self.pos;
        let mut taken = 0;
        while pos < end {
            let at = data + (pos & self.mask);
            // SAFETY: `at` is inside the first copy of the data pages, and record headers are
            // 8-byte aligned.
            let header = unsafe { &*self.producer.ptr.add(at as usize).cast::<AtomicU32>() };
            let word = header.load(Ordering::Acquire);
            if word & BUSY != 0 {
                break;
            }
            let len = u64::from(word & !(BUSY | DISCARD));
            if at + HDR + len > data + 2 * (self.mask + 1) {
                // Cannot happen for a record the kernel wrote; never read past the mapping.
                break;
            }
            pos += (HDR + len).next_multiple_of(8);
            if word & DISCARD == 0 {
                // SAFETY: the record lies within the doubled data pages (checked above) and the
                // kernel does not reuse it before the consumer position passes it.
                let record = unsafe {
                    std::slice::from_raw_parts(
                        self.producer.ptr.add((at + HDR) as usize),
                        len as usize,
                    )
                };
                taken += 1;
                if !take(record) {
                    break;
                }
            }
        }
        if pos != self.pos {
            self.pos = pos;
            self.consumer_pos().store(pos, Ordering::Release);
        }
        taken
    }
}

impl AsRawFd for RingReader {
    fn as_raw_fd(&self) -> RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}
