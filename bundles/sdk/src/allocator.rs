//! The global allocator: a bump allocator that never frees.
//!
//! Why that is enough: every invocation runs in a **fresh instance** (docs/ABI.md), so the heap
//! lives exactly as long as one handler call and the whole instance is dropped afterwards.
//! Freeing would only save memory within one call; the manifest's memory limit bounds the worst
//! case. Two cheap cases are still handled, because `Vec`/`String` growth hits them constantly:
//! freeing or growing the most recent allocation happens in place.
//!
//! The heap starts at `__heap_base` (which the linker places after the stack and static data) and
//! grows with `memory.grow`; this
//! allocator must be the only code that grows memory (it checks, and fails the allocation if not).
//! wasm32-unknown-unknown guests are single-threaded, so relaxed atomics are plain loads/stores.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

const PAGE: usize = 64 * 1024;

unsafe extern "C" {
    /// Defined by wasm-ld: the first byte after the stack and static data (not an import).
    static __heap_base: u8;
}

/// The address of `__heap_base`.
fn heap_base() -> usize {
    // Only the symbol's address is taken, never its value.
    &raw const __heap_base as usize
}

/// A bump allocator over the memory from `__heap_base` on.
struct Bump {
    /// The next free byte; 0 until the first allocation.
    next: AtomicUsize,
    /// One past the last byte this allocator owns.
    end: AtomicUsize,
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    next: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
};

impl Bump {
    /// Makes `[.., upto)` ours, growing memory by whole pages. False if the host refuses or
    /// something else grew memory behind our back.
    fn reserve(&self, upto: usize) -> bool {
        let mut end = self.end.load(Relaxed);
        if end == 0 {
            // The rest of the initial memory after the stack and data is free: small heaps fit
            // there without growing memory at all.
            self.next.store(heap_base(), Relaxed);
            end = wasm32::memory_size(0) * PAGE;
            self.end.store(end, Relaxed);
        }
        if upto <= end {
            return true;
        }
        let pages = (upto - end).div_ceil(PAGE);
        let previous = wasm32::memory_grow(0, pages);
        if previous == usize::MAX || previous * PAGE != end {
            return false;
        }
        self.end.store(end + pages * PAGE, Relaxed);
        true
    }
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !self.reserve(0) {
            return ptr::null_mut();
        }
        let next = self.next.load(Relaxed);
        let Some(start) = next.checked_next_multiple_of(layout.align()) else {
            return ptr::null_mut();
        };
        let Some(stop) = start.checked_add(layout.size()) else {
            return ptr::null_mut();
        };
        if !self.reserve(stop) {
            return ptr::null_mut();
        }
        self.next.store(stop, Relaxed);
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Only the most recent allocation can be given back.
        if ptr as usize + layout.size() == self.next.load(Relaxed) {
            self.next.store(ptr as usize, Relaxed);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let start = ptr as usize;
        if start + layout.size() == self.next.load(Relaxed) {
            // The most recent allocation grows or shrinks in place.
            let Some(stop) = start.checked_add(new_size) else {
                return ptr::null_mut();
            };
            if !self.reserve(stop) {
                return ptr::null_mut();
            }
            self.next.store(stop, Relaxed);
            return ptr;
        }
        // SAFETY: forwarded from our caller, who upholds `realloc`'s contract.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size, as `realloc` requires of its caller.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long.
            unsafe { ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
        }
        new
    }
}
