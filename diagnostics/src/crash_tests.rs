//! Tests of crash detection on copies of real kernel reports (formats as
//! printed by Linux 4.x–6.x on x86_64 and arm64).

use super::*;

/// Adds `[   25.000123] `-style timestamps, as on a real console.
fn stamped(text: &str) -> String {
    text.lines()
        .enumerate()
        .map(|(i, l)| format!("[{:>5}.{:06}] {l}\n", 25 + i / 100, 123 + i * 977))
        .collect()
}

fn scan(text: &str) -> Vec<CrashReport> {
    CrashDetector::default().scan(text)
}

fn one(text: &str) -> CrashReport {
    let r = scan(text);
    assert_eq!(r.len(), 1, "{r:#?}");
    r.into_iter().next().unwrap()
}

const SYSRQ_PANIC: &str = "\
sysrq: Trigger a crash
Kernel panic - not syncing: sysrq triggered crash
CPU: 0 PID: 412 Comm: sh Not tainted 6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 panic+0x118/0x2ed
 ? _printk+0x58/0x73
 sysrq_handle_crash+0x16/0x20
 __handle_sysrq.cold+0x43/0x11b
 write_sysrq_trigger+0x24/0x40
 proc_reg_write+0x51/0x90
 vfs_write+0xc8/0x400
 ksys_write+0x5f/0xe0
 do_syscall_64+0x58/0xc0
 entry_SYSCALL_64_after_hwframe+0x64/0xce
RIP: 0033:0x7f2c3b7a4f33
Code: 8b 15 61 ef 0c 00 f7 d8 64 89 02 48 c7 c0 ff ff ff ff eb b7 0f 1f 00 64 8b 04 25 18 00 00 00 85 c0 75 14 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 55 c3 0f 1f 40 00 48 83 ec 28 48 89 54 24 18
RSP: 002b:00007ffd8a8a5c58 EFLAGS: 00000246 ORIG_RAX: 0000000000000001
RAX: ffffffffffffffda RBX: 0000000000000002 RCX: 00007f2c3b7a4f33
 </TASK>
Kernel Offset: 0x1a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
---[ end Kernel panic - not syncing: sysrq triggered crash ]---";

const NULL_DEREF: &str = "\
BUG: kernel NULL pointer dereference, address: 0000000000000000
#PF: supervisor write access in kernel mode
#PF: error_code(0x0002) - not-present page
PGD 0 P4D 0
Oops: 0002 [#1] PREEMPT SMP NOPTI
CPU: 1 PID: 345 Comm: insmod Tainted: G           O       6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:crashmod_init+0x15/0x1000 [crashmod]
Code: Unable to access opcode bytes at 0xffffffffc0a4efeb.
RSP: 0018:ffffb5b2c0587c78 EFLAGS: 00010246
RAX: 0000000000000000 RBX: 0000000000000000 RCX: 0000000000000000
Call Trace:
 <TASK>
 ? __die_body.cold+0x1a/0x1f
 ? page_fault_oops+0xd2/0x2b0
 ? exc_page_fault+0x70/0x170
 ? asm_exc_page_fault+0x22/0x30
 ? crashmod_init+0x15/0x1000 [crashmod]
 do_one_initcall+0x41/0x200
 do_init_module+0x4c/0x240
 __do_sys_finit_module+0xac/0x120
 do_syscall_64+0x58/0xc0
 entry_SYSCALL_64_after_hwframe+0x64/0xce
 </TASK>
Modules linked in: crashmod(O+) ext4 crc16 mbcache jbd2 virtio_net virtio_blk
CR2: 0000000000000000
---[ end trace 0000000000000000 ]---
Kernel panic - not syncing: Fatal exception
Kernel Offset: 0x1a000000 from 0xffffffff81000000 (relocation range: 0xffffffff80000000-0xffffffffbfffffff)
---[ end Kernel panic - not syncing: Fatal exception ]---";

const PAGE_FAULT_EXT4: &str = "\
BUG: unable to handle page fault for address: ffffed1002a1c000
#PF: supervisor read access in kernel mode
#PF: error_code(0x0000) - not-present page
PGD 23fff0067 P4D 23fff0067 PUD 23ffef067 PMD 0
Oops: 0000 [#1] PREEMPT SMP KASAN NOPTI
CPU: 0 PID: 1190 Comm: dd Not tainted 6.6.15 #3
Hardware name: QEMU Standard PC (Q35 + ICH9, 2009), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:ext4_map_blocks+0x1a3/0x13e0
Code: 48 89 fa 48 c1 ea 03 80 3c 02 00 0f 85 c6 0f 00 00 4c 8b 7b 28 48 b8 00 00 00 00 00 fc ff df 4c 89 fa 48 c1 ea 03 <80> 3c 02 00
RSP: 0018:ffff88810b2e7738 EFLAGS: 00010a02
Call Trace:
 <TASK>
 ? __die+0x1f/0x70
 ? page_fault_oops+0x223/0x6b0
 ? ext4_map_blocks+0x1a3/0x13e0
 ext4_mpage_readpages+0x5d4/0x1360
 read_pages+0x17d/0x9c0
 page_cache_ra_unbounded+0x2fd/0x520
 filemap_get_pages+0x2ba/0x1070
 filemap_read+0x2fb/0xb90
 vfs_read+0x475/0x7d0
 ksys_read+0xf1/0x1d0
 do_syscall_64+0x3f/0x90
 entry_SYSCALL_64_after_hwframe+0x6e/0xd8
 </TASK>
Modules linked in:
CR2: ffffed1002a1c000
---[ end trace 0000000000000000 ]---";

const GPF: &str = "\
general protection fault, probably for non-canonical address 0xdffffc0000000003: 0000 [#1] PREEMPT SMP KASAN
KASAN: null-ptr-deref in range [0x0000000000000018-0x000000000000001f]
CPU: 1 PID: 3593 Comm: syz-executor.0 Not tainted 6.1.0-rc5-syzkaller #0
Hardware name: Google Google Compute Engine/Google Compute Engine, BIOS Google 10/26/2022
RIP: 0010:xfs_inode_item_format_data_fork+0x8d/0x560
Code: 03 80 3c 02 00 0f 85 d1 03 00 00 48 8b 9b a0 00 00 00 48 b8 00 00 00 00 00 fc ff df 48 8d 7b 18 48 89 fa 48 c1 ea 03 <80> 3c 02
RSP: 0018:ffffc900039af6f0 EFLAGS: 00010202
Call Trace:
 <TASK>
 xfs_inode_item_format+0x3c6/0x9d0
 xlog_cil_insert_format_items+0x2f0/0x6a0
 xlog_cil_commit+0x12f/0x1310
 __xfs_trans_commit+0x3a2/0x10a0
 xfs_create+0x9e6/0x1120
 vfs_create+0x2b1/0x450
 </TASK>
Modules linked in:
---[ end trace 0000000000000000 ]---";

const OOPS_ONLY: &str = "\
Oops: 0000 [#1] PREEMPT SMP PTI
CPU: 2 PID: 77 Comm: kworker/2:1 Not tainted 5.15.0-91-generic #101-Ubuntu
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.15.0-1 04/01/2014
Workqueue: events vmballoon_work [vmw_balloon]
RIP: 0010:vmballoon_deflate+0x8a/0x3b0 [vmw_balloon]
Code: 00 00 00 00 48 8b 45 c0 48 8b 55 b8 <48> 8b 00 48 39 c2 0f 84 12 01 00 00
RSP: 0018:ffffb0cb4033fd90 EFLAGS: 00010246
Call Trace:
 <TASK>
 vmballoon_work+0x9e/0x230 [vmw_balloon]
 process_one_work+0x228/0x3d0
 worker_thread+0x53/0x420
 kthread+0x127/0x150
 ret_from_fork+0x1f/0x30
 </TASK>
---[ end trace 6e6ba3a7e9bc30b4 ]---";

const ARM64_NULL: &str = "\
Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008
Mem abort info:
  ESR = 0x0000000096000005
  EC = 0x25: DABT (current EL), IL = 32 bits
Data abort info:
  ISV = 0, ISS = 0x00000005
[0000000000000008] user address but active_mm is swapper
Internal error: Oops: 0000000096000005 [#1] PREEMPT SMP
Modules linked in:
CPU: 3 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1
Hardware name: linux,dummy-virt (DT)
pstate: 60400005 (nZCv daif +PAN -UAO -TCO -DIT -SSBS BTYPE=--)
pc : virtio_dev_probe+0x2c/0x3a0
lr : really_probe+0xbc/0x2dc
sp : ffff80000802bb00
Call trace:
 virtio_dev_probe+0x2c/0x3a0
 really_probe+0xbc/0x2dc
 __driver_probe_device+0x78/0xe0
 driver_probe_device+0xd8/0x160
Code: aa0003f3 f9400000 f9401c14 b4000074 (f9400681)
---[ end trace 0000000000000000 ]---";

const KERNEL_BUG: &str = "\
------------[ cut here ]------------
kernel BUG at fs/ext4/inode.c:1234!
invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
CPU: 0 PID: 1203 Comm: fsstress Not tainted 6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:ext4_write_inode.cold+0x2b/0x2d [ext4]
Code: 0f 0b 48 c7 c7 d8 5f 9b c0 e8 5a 8e 9f ca 0f 0b
RSP: 0018:ffffa4a2c0e8bd70 EFLAGS: 00010246
Call Trace:
 <TASK>
 ? __die_body.cold+0x1a/0x1f
 ? die+0x2a/0x50
 ? do_trap+0xc5/0x110
 ? do_error_trap+0x6a/0x90
 ? exc_invalid_op+0x4c/0x60
 ? asm_exc_invalid_op+0x16/0x20
 __writeback_single_inode+0x2d6/0x350
 writeback_single_inode+0xa9/0x170
 sync_inode_metadata+0x3d/0x60
 </TASK>
Modules linked in: ext4 crc16 mbcache jbd2
---[ end trace 0000000000000000 ]---";

const INVALID_OPCODE: &str = "\
Oops: invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.10.0 #1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.3-debian-1.16.3-2 04/01/2014
RIP: 0010:mm_init_foo+0x12/0x20
Call Trace:
 <TASK>
 kernel_init_freeable+0x22a/0x2a0
 kernel_init+0x1a/0x1c0
 ret_from_fork+0x31/0x50
 </TASK>
---[ end trace 0000000000000000 ]---";

const KASAN_UAF: &str = "\
==================================================================
BUG: KASAN: use-after-free in foo+0x12/0x34
Read of size 8 at addr ffff88800a8b1e10 by task bar/123

CPU: 1 PID: 123 Comm: bar Not tainted 6.1.0 #1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x48/0x70
 print_report+0xc3/0x620
 kasan_report+0xb0/0xe0
 foo+0x12/0x34
 bar_ioctl+0x55/0x90
 __x64_sys_ioctl+0x8d/0xd0
 </TASK>

Allocated by task 123:
 kasan_save_stack+0x22/0x50
 __kmalloc+0x4b/0x140
 bar_open+0x1e/0x60

Freed by task 123:
 kasan_save_stack+0x22/0x50
 kfree+0x7a/0x120
 bar_release+0x1a/0x30

The buggy address belongs to the object at ffff88800a8b1e00
 which belongs to the cache kmalloc-64 of size 64
The buggy address is located 16 bytes inside of
 freed 64-byte region [ffff88800a8b1e00, ffff88800a8b1e40)

Memory state around the buggy address:
 ffff88800a8b1d00: fa fb fb fb fb fb fb fb fc fc fc fc fc fc fc fc
>ffff88800a8b1e00: fa fb fb fb fb fb fb fb fc fc fc fc fc fc fc fc
                         ^
==================================================================";

const UBSAN_NEW: &str = "\
------------[ cut here ]------------
UBSAN: array-index-out-of-bounds in fs/xfs/x.c:12:3
index 5 is out of range for type 'int [4]'
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.6.0 #1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Call Trace:
 <TASK>
 dump_stack_lvl+0x48/0x70
 __ubsan_handle_out_of_bounds+0xa0/0xe0
 xfs_dir2_leaf_lookup_int+0x6c3/0x740
 xfs_dir2_leaf_lookup+0x33/0x130
 xfs_dir_lookup+0x1e0/0x260
 </TASK>
---[ end trace ]---";

const UBSAN_OLD: &str = "\
================================================================================
UBSAN: shift-out-of-bounds in drivers/net/foo.c:88:15
shift exponent 64 is too large for 64-bit type 'long unsigned int'
CPU: 2 PID: 511 Comm: ip Not tainted 5.10.0 #1
Call Trace:
 dump_stack+0x8b/0xb0
 ubsan_epilogue+0x5/0x40
 __ubsan_handle_shift_out_of_bounds.cold+0x61/0x10e
 foo_set_mask+0x9e/0xb0 [foo]
 foo_open+0x44/0x70 [foo]
================================================================================";

const KFENCE: &str = "\
==================================================================
BUG: KFENCE: out-of-bounds read in test_out_of_bounds_read+0xa6/0x234

Out-of-bounds read at 0xffff8c3f2e291fff (1B left of kfence-#72):
 test_out_of_bounds_read+0xa6/0x234
 kunit_try_run_case+0x61/0xa0
 kunit_generic_run_threadfn_adapter+0x16/0x30
 kthread+0x176/0x1b0
 ret_from_fork+0x22/0x30

kfence-#72: 0xffff8c3f2e292000-0xffff8c3f2e29201f, size=32, cache=kmalloc-32

allocated by task 484 on cpu 0 at 32.919330s:
 test_alloc+0xfe/0x738
 test_out_of_bounds_read+0x9b/0x234
 kunit_try_run_case+0x61/0xa0

CPU: 0 PID: 484 Comm: kunit_try_catch Not tainted 5.13.0-rc3+ #7
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.14.0-2 04/01/2014
==================================================================";

const KCSAN: &str = "\
==================================================================
BUG: KCSAN: data-race in test_kernel_read / test_kernel_write

write to 0xffffffffc009a628 of 8 bytes by task 487 on cpu 0:
 test_kernel_write+0x1d/0x30
 access_thread+0x89/0xd0
 kthread+0x23e/0x260

read to 0xffffffffc009a628 of 8 bytes by task 488 on cpu 6:
 test_kernel_read+0x10/0x20
 access_thread+0x89/0xd0
 kthread+0x23e/0x260

value changed: 0x00000000000009a6 -> 0x00000000000009b2

Reported by Kernel Concurrency Sanitizer on:
CPU: 6 PID: 488 Comm: access_thread Not tainted 5.12.0-rc2+ #1
==================================================================";

const WARNING: &str = "\
------------[ cut here ]------------
WARNING: CPU: 1 PID: 123 at fs/ext4/inode.c:1234 ext4_foo+0x1/0x2 [ext4]
Modules linked in: ext4 crc16 mbcache jbd2 virtio_net
CPU: 1 PID: 123 Comm: kworker/u4:2 Not tainted 6.1.0-18-amd64 #1  Debian 6.1.76-1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
Workqueue: writeback wb_workfn (flush-254:0)
RIP: 0010:ext4_foo+0x1/0x2 [ext4]
Code: 89 df e8 2a ff ff ff 5b 5d c3 cc cc cc cc 0f 0b eb f3 66 90
RSP: 0018:ffffa4a2c0e8bd70 EFLAGS: 00010246
Call Trace:
 <TASK>
 ? __warn+0x7d/0xc0
 ? ext4_foo+0x1/0x2 [ext4]
 ? report_bug+0xe2/0x150
 ? handle_bug+0x41/0x70
 ? exc_invalid_op+0x13/0x60
 ? asm_exc_invalid_op+0x16/0x20
 ext4_writepages+0x2bf/0x3a0 [ext4]
 do_writepages+0xc1/0x1a0
 </TASK>
---[ end trace 0000000000000000 ]---";

const WARNING_PANIC_ON_WARN: &str = "\
------------[ cut here ]------------
WARNING: CPU: 0 PID: 3602 at net/core/dev.c:10234 netdev_run_todo+0x7a1/0x9f0
Modules linked in:
Kernel panic - not syncing: kernel: panic_on_warn set ...
CPU: 0 PID: 3602 Comm: syz-executor.2 Not tainted 6.1.0-syzkaller #0
Call Trace:
 <TASK>
 dump_stack_lvl+0xd1/0x138
 panic+0x2cc/0x5e7
 check_panic_on_warn.cold+0x19/0x35
 __warn.cold+0x1a/0x44
 report_bug+0x1c0/0x210
 handle_bug+0x3c/0x70
 exc_invalid_op+0x14/0x40
 asm_exc_invalid_op+0x16/0x20
RIP: 0010:netdev_run_todo+0x7a1/0x9f0
 rtnl_unlock+0x9/0x10
 </TASK>
Kernel Offset: disabled
---[ end Kernel panic - not syncing: kernel: panic_on_warn set ... ]---";

const WARNING_617: &str = "\
------------[ cut here ]------------
WARNING: fs/ext4/inode.c:1234 at ext4_foo+0x1/0x2 [ext4], CPU#1: kworker/u4:2/123
Modules linked in: ext4
CPU: 1 UID: 0 PID: 123 Comm: kworker/u4:2 Not tainted 6.17.0 #1 PREEMPT(voluntary)
RIP: 0010:ext4_foo+0x1/0x2 [ext4]
---[ end trace 0000000000000000 ]---";

const LOCKDEP: &str = "\
======================================================
WARNING: possible circular locking dependency detected
6.1.0 #1 Not tainted
------------------------------------------------------
syz-executor/3601 is trying to acquire lock:
ffff88801f2c0a38 (&sb->s_type->i_mutex_key#10){+.+.}-{3:3}, at: ext4_buffered_write_iter+0x8a/0x3b0

but task is already holding lock:
ffff88801cb3a470 (sb_writers#4){.+.+}-{0:0}, at: ksys_write+0x12b/0x250

which lock already depends on the new lock.

-> #1 (sb_writers#4){.+.+}-{0:0}:
       lock_acquire+0x1a2/0x530
       mnt_want_write+0x3b/0x80

other info that might help us debug this:

 *** DEADLOCK ***

stack backtrace:
CPU: 0 PID: 3601 Comm: syz-executor Not tainted 6.1.0 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x1e3/0x2cb
 check_noncircular+0x2f9/0x3b0
 __lock_acquire+0x2a3e/0x7d30
 lock_acquire+0x1a2/0x530
 down_write+0x97/0x2a0
 ext4_buffered_write_iter+0x8a/0x3b0
 ext4_file_write_iter+0x1b9/0x1880
 </TASK>";

const HUNG_TASK: &str = "\
INFO: task kworker/0:1:123 blocked for more than 120 seconds.
      Not tainted 6.1.0-18-amd64 #1 Debian 6.1.76-1
\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.
task:kworker/0:1     state:D stack:0     pid:123   ppid:2      flags:0x00004000
Workqueue: events_freezable_power_ disk_events_workfn
Call Trace:
 <TASK>
 __schedule+0x34d/0x9e0
 schedule+0x5a/0xd0
 schedule_timeout+0x118/0x150
 ? __bpf_trace_tick_stop+0x10/0x10
 wait_for_completion+0x86/0x150
 __flush_work.isra.0+0x165/0x260
 __cancel_work_timer+0x126/0x1b0
 sr_check_events+0x97/0x2c0 [sr_mod]
 cdrom_check_events+0x1a/0x40 [cdrom]
 disk_check_events+0x3c/0x110
 process_one_work+0x1c7/0x380
 worker_thread+0x4d/0x380
 kthread+0xda/0x100
 ret_from_fork+0x22/0x30
 </TASK>";

const HUNG_TASK_NO_TRACE: &str = "\
INFO: task sync:1543 blocked for more than 245 seconds.
      Not tainted 6.1.0 #1
\"echo 0 > /proc/sys/kernel/hung_task_timeout_secs\" disables this message.";

const RCU_STALL: &str = "\
rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:
rcu: \t0-...!: (1 GPs behind) idle=b4c/1/0x4000000000000000 softirq=1540/1541 fqs=0
\t(detected by 1, t=21002 jiffies, g=1605, q=165 ncpus=2)
Sending NMI from CPU 1 to CPUs 0:
NMI backtrace for cpu 0
CPU: 0 PID: 417 Comm: spin Not tainted 6.1.0 #1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:spin_forever+0x5/0x10 [spinmod]
Code: cc cc cc cc cc cc cc cc cc cc cc cc cc cc eb fe 66 0f 1f 44 00 00
RSP: 0018:ffffb0cb4033fd90 EFLAGS: 00000246
Call Trace:
 <TASK>
 spinmod_write+0x22/0x40 [spinmod]
 vfs_write+0xc8/0x400
 </TASK>
rcu: rcu_preempt kthread timer wakeup didn't happen for 21000 jiffies! g1605 f0x0 RCU_GP_WAIT_FQS(5) ->state=0x402";

const SOFT_LOCKUP: &str = "\
watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]
Modules linked in:
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1
Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
RIP: 0010:delay_tsc+0x2b/0x70
Code: 00 65 44 8b 05 61 17 cd 7e 0f 01 f9 66 90 48 c1 e2 20 48 09 c2 48 89 d6 eb 1b f3 90 65 8b 05 47 17 cd 7e 41 39 c0 75 2c <0f> 01 f9
RSP: 0018:ffffc90000013e58 EFLAGS: 00000283
Call Trace:
 <IRQ>
 ? watchdog_timer_fn+0x1d9/0x240
 ? __hrtimer_run_queues+0x112/0x2b0
 </IRQ>
 <TASK>
 ? asm_sysvec_apic_timer_interrupt+0x1a/0x20
 ? delay_tsc+0x2b/0x70
 my_driver_probe+0x3e/0x80
 do_one_initcall+0x41/0x200
 </TASK>
Kernel panic - not syncing: softlockup: hung tasks";

const HARD_LOCKUP: &str = "\
Watchdog detected hard LOCKUP on cpu 1
Modules linked in: lockmod(O)
CPU: 1 PID: 530 Comm: insmod Tainted: G           O       6.1.0 #1
RIP: 0010:lockmod_spin+0x12/0x30 [lockmod]
Call Trace:
 <NMI>
 ? watchdog_hardlockup_check+0x11a/0x1f0
 </NMI>
 <TASK>
 lockmod_init+0x20/0x1000 [lockmod]
 </TASK>";

const WORKQUEUE_LOCKUP: &str = "\
BUG: workqueue lockup - pool cpus=0 node=0 flags=0x0 nice=0 stuck for 33s!
Showing busy workqueues and worker pools:
workqueue events: flags=0x0
  pwq 0: cpus=0 node=0 flags=0x0 nice=0 active=2/256 refcnt=3
    pending: vmstat_shepherd, psi_avgs_work";

const SLEEPING_BUG: &str = "\
BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580
in_atomic(): 1, irqs_disabled(): 0, non_block: 0, pid: 1, name: swapper/0
preempt_count: 1, expected: 0
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0 #1
Call Trace:
 <TASK>
 dump_stack_lvl+0x44/0x5c
 __might_resched.cold+0xcc/0xea
 __mutex_lock+0x4c/0x8f0
 mydrv_probe+0x5a/0x120
 </TASK>";

/// Every pattern, with a report of that kind and its expected title.
const FIXTURES: &[(&str, &str, &str, bool)] = &[
    (
        "kernel-panic",
        SYSRQ_PANIC,
        "kernel panic: sysrq triggered crash",
        true,
    ),
    (
        "null-pointer-dereference",
        NULL_DEREF,
        "BUG: kernel NULL pointer dereference in crashmod_init",
        true,
    ),
    (
        "page-fault",
        PAGE_FAULT_EXT4,
        "BUG: unable to handle page fault in ext4_map_blocks",
        true,
    ),
    (
        "general-protection-fault",
        GPF,
        "general protection fault in xfs_inode_item_format_data_fork",
        true,
    ),
    ("oops", OOPS_ONLY, "Oops in vmballoon_deflate", true),
    (
        "arm64-fault",
        ARM64_NULL,
        "Unable to handle kernel NULL pointer dereference in virtio_dev_probe",
        true,
    ),
    (
        "kernel-bug",
        KERNEL_BUG,
        "kernel BUG in ext4_write_inode",
        true,
    ),
    (
        "invalid-opcode",
        INVALID_OPCODE,
        "invalid opcode in mm_init_foo",
        true,
    ),
    (
        "kasan",
        KASAN_UAF,
        "KASAN: use-after-free Read in foo",
        true,
    ),
    (
        "ubsan",
        UBSAN_NEW,
        "UBSAN: array-index-out-of-bounds in xfs_dir2_leaf_lookup_int",
        true,
    ),
    (
        "ubsan",
        UBSAN_OLD,
        "UBSAN: shift-out-of-bounds in foo_set_mask",
        true,
    ),
    (
        "kfence",
        KFENCE,
        "KFENCE: out-of-bounds read in test_out_of_bounds_read",
        true,
    ),
    (
        "kcsan",
        KCSAN,
        "KCSAN: data-race in test_kernel_read / test_kernel_write",
        false,
    ),
    ("warning", WARNING, "WARNING in ext4_foo", false),
    ("warning-6.17", WARNING_617, "WARNING in ext4_foo", false),
    (
        "lockdep",
        LOCKDEP,
        "possible deadlock in ext4_buffered_write_iter",
        false,
    ),
    (
        "hung-task",
        HUNG_TASK,
        "INFO: task hung in sr_check_events",
        true,
    ),
    ("hung-task", HUNG_TASK_NO_TRACE, "INFO: task hung", true),
    (
        "rcu-stall",
        RCU_STALL,
        "INFO: rcu detected stall in spin_forever",
        true,
    ),
    (
        "soft-lockup",
        SOFT_LOCKUP,
        "BUG: soft lockup in delay_tsc",
        true,
    ),
    (
        "hard-lockup",
        HARD_LOCKUP,
        "BUG: hard lockup in lockmod_spin",
        true,
    ),
    (
        "workqueue-lockup",
        WORKQUEUE_LOCKUP,
        "BUG: workqueue lockup",
        true,
    ),
    (
        "bug",
        SLEEPING_BUG,
        "BUG: sleeping function called from invalid context in mydrv_probe",
        true,
    ),
];

fn first_message_line(text: &str) -> &str {
    text.lines()
        .find(|l| !is_preamble(l))
        .expect("a report line")
}

#[test]
fn every_pattern_has_a_fixture_and_matches_it_first() {
    let d = CrashDetector::default();
    for (name, text, _, _) in FIXTURES {
        let idx = d
            .match_start(first_message_line(text))
            .unwrap_or_else(|| panic!("{name}: first line does not match"));
        assert_eq!(PATTERNS[idx].name, *name);
    }
    for p in PATTERNS {
        assert!(
            FIXTURES.iter().any(|f| f.0 == p.name),
            "pattern {} has no fixture",
            p.name
        );
    }
    let names: Vec<_> = pattern_names().collect();
    assert_eq!(names.len(), PATTERNS.len());
}

#[test]
fn fixtures_give_syzkaller_titles() {
    for (name, text, title, fatal) in FIXTURES {
        for input in [text.to_string(), stamped(text)] {
            let r = scan(&input);
            assert!(!r.is_empty(), "{name}: no report");
            assert_eq!(r[0].title, *title, "{name}");
            assert_eq!(r[0].fatal, *fatal, "{name}: fatal");
        }
    }
}

#[test]
fn sysrq_panic_excerpt_runs_from_trigger_to_end_marker() {
    let text = format!("Debian GNU/Linux 12 vm ttyS0\n\nroot@vm:~# echo c > /proc/sysrq-trigger\n{}\nAFTER-MARKER\n", stamped(SYSRQ_PANIC));
    let r = one(&text);
    let first = r.excerpt.lines().next().unwrap();
    let last = r.excerpt.lines().last().unwrap();
    assert!(first.ends_with("sysrq: Trigger a crash"), "{first}");
    assert!(first.starts_with("[   25."), "timestamps are kept: {first}");
    assert!(last.ends_with("---[ end Kernel panic - not syncing: sysrq triggered crash ]---"));
    assert!(!r.excerpt.contains("AFTER-MARKER"));
    assert!(!r.excerpt.contains("root@vm"));
}

#[test]
fn oops_then_fatal_exception_panic_are_two_reports() {
    let r = scan(NULL_DEREF);
    assert_eq!(r.len(), 2, "{r:#?}");
    assert_eq!(
        r[0].title,
        "BUG: kernel NULL pointer dereference in crashmod_init"
    );
    assert!(r[0].excerpt.contains("Oops: 0002 [#1] PREEMPT SMP NOPTI"));
    assert!(r[0]
        .excerpt
        .ends_with("---[ end trace 0000000000000000 ]---"));
    assert_eq!(r[1].title, "kernel panic: Fatal exception");
    assert!(r[1].fatal);
}

#[test]
fn kernel_bug_without_rip_keeps_the_location() {
    let text: String = KERNEL_BUG
        .lines()
        .filter(|l| {
            !l.starts_with("RIP:")
                && !l.starts_with(" __writeback")
                && !l.starts_with(" writeback")
                && !l.starts_with(" sync_inode")
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(one(&text).title, "kernel BUG at fs/ext4/inode.c:1234!");
}

#[test]
fn kasan_excerpt_includes_separators_and_blank_lines() {
    let r = one(KASAN_UAF);
    assert!(r
        .excerpt
        .starts_with("=================================================================="));
    assert!(r
        .excerpt
        .ends_with("=================================================================="));
    assert!(r.excerpt.contains("Freed by task 123:"));
    assert!(r.excerpt.contains("\n\n"));
    let write = KASAN_UAF
        .replace("Read of size 8", "Write of size 8")
        .replace("use-after-free", "slab-out-of-bounds");
    assert_eq!(one(&write).title, "KASAN: slab-out-of-bounds Write in foo");
}

#[test]
fn warnings_are_recorded_not_fatal_unless_configured() {
    let r = one(WARNING);
    assert!(!r.fatal);
    assert!(r
        .excerpt
        .starts_with("------------[ cut here ]------------"));
    let mut d = CrashDetector::new(CrashConfig {
        warnings_fatal: true,
        ..CrashConfig::default()
    });
    let r = d.scan(WARNING);
    assert_eq!(r.len(), 1);
    assert!(r[0].fatal);
    assert!(d.config().warnings_fatal);
}

#[test]
fn panic_on_warn_is_one_fatal_report_titled_by_the_warning() {
    let r = one(WARNING_PANIC_ON_WARN);
    assert_eq!(r.title, "WARNING in netdev_run_todo");
    assert!(r.fatal, "the kernel panicked");
    assert!(r
        .excerpt
        .ends_with("---[ end Kernel panic - not syncing: kernel: panic_on_warn set ... ]---"));
}

#[test]
fn soft_lockup_then_panic() {
    let r = scan(SOFT_LOCKUP);
    assert_eq!(r.len(), 2, "{r:#?}");
    assert_eq!(r[0].title, "BUG: soft lockup in delay_tsc");
    assert!(r[0].excerpt.ends_with("</TASK>"));
    assert_eq!(r[1].title, "kernel panic: softlockup: hung tasks");
    // Old format, and without RIP: the first meaningful task frame.
    let old: String = SOFT_LOCKUP
        .replace("watchdog: BUG", "NMI watchdog: BUG")
        .lines()
        .filter(|l| !l.starts_with("RIP:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(scan(&old)[0].title, "BUG: soft lockup in my_driver_probe");
}

#[test]
fn lockdep_title_skips_locking_frames() {
    let r = one(LOCKDEP);
    assert!(!r.fatal);
    assert!(r.excerpt.starts_with("======"));
    assert!(r.excerpt.ends_with("</TASK>"));
}

#[test]
fn rcu_stall_ends_at_task_and_older_format_matches() {
    let r = one(RCU_STALL);
    assert!(!r.excerpt.contains("kthread timer wakeup"));
    let old = "INFO: rcu_sched self-detected stall on CPU\n\t0-....: (20999 ticks this GP)\nCall Trace:\n <IRQ>\n rcu_sched_clock_irq+0x3f1/0x8c0\n </IRQ>\n <TASK>\n busy_loop+0x10/0x20\n </TASK>\n";
    assert_eq!(one(old).title, "INFO: rcu detected stall in busy_loop");
}

#[test]
fn timestamps_and_caller_ids_are_stripped() {
    for line in [
        "[   12.345678] Kernel panic - not syncing: x",
        "[   12.345678][    T1] Kernel panic - not syncing: x",
        "[   12.345678] [    T1] Kernel panic - not syncing: x",
        "[    T1] Kernel panic - not syncing: x",
        "[  C0] Kernel panic - not syncing: x",
        "[12345.000001] Kernel panic - not syncing: x\r",
    ] {
        let mut d = CrashDetector::default();
        assert!(d.feed_line(line, Instant::now()).is_none());
        assert!(d.in_report(), "{line}");
        assert_eq!(d.flush().unwrap().title, "kernel panic: x", "{line}");
    }
    assert_eq!(kernel_message("[   1.5] msg"), "msg");
    assert_eq!(kernel_message("[abc] msg"), "[abc] msg");
    assert_eq!(kernel_message("[    T12]msg"), "msg");
}

#[test]
fn userspace_lines_mentioning_bug_or_panic_do_not_trigger() {
    let text = "\
root@vm:~# echo 'Kernel panic - not syncing: fake'
this is not a BUG: really
grep: BUG: KASAN: use-after-free in foo: No such file
[  OK  ] Started kernel panic handler.
  BUG: indented is not a kernel message
Running test: WARNING: CPU: 1 PID: 2 at x.c:1 f+0x1/0x2
[   12.345678] systemd[1]: Started Panic Service (BUG: none).
[   12.345678] audit: type=1400 msg='Oops: 0000 [#1]'
don't panic
Oops, something went wrong
INFO: task list printed
Watchdog detected nothing
ktest: kernel BUG tests passed
";
    let mut d = CrashDetector::default();
    assert!(d.scan(text).is_empty());
    // Many ordinary lines, including ones starting with the filter letters.
    for l in text.lines() {
        assert!(d.feed_line(l, Instant::now()).is_none());
        assert!(!d.in_report(), "{l}");
    }
}

#[test]
fn unterminated_report_is_finalised_within_two_seconds() {
    let t0 = Instant::now();
    let mut d = CrashDetector::default();
    // A WARNING whose end marker never comes, while the console keeps
    // printing unrelated lines every 100 ms.
    let head: Vec<&str> = WARNING.lines().take(6).collect();
    for l in &head {
        assert!(d.feed_line(l, t0).is_none());
    }
    let mut got = None;
    for i in 1..=30u64 {
        let now = t0 + Duration::from_millis(100 * i);
        if let Some(r) = d.feed_line("userspace noise", now).or_else(|| d.poll(now)) {
            got = Some((r, now - t0));
            break;
        }
    }
    let (r, after) = got.expect("finalised");
    assert!(after <= Duration::from_secs(2), "{after:?}");
    assert!(after >= d.config().max_wait, "{after:?}");
    assert_eq!(r.title, "WARNING in ext4_foo");
    assert!(r.excerpt.contains("userspace noise"));
}

#[test]
fn quiet_console_finalises_after_quiet_period() {
    let t0 = Instant::now();
    let mut d = CrashDetector::default();
    for l in WORKQUEUE_LOCKUP.lines() {
        assert!(d.feed_line(l, t0).is_none());
    }
    assert!(d.poll(t0 + Duration::from_millis(100)).is_none());
    let r = d.poll(t0 + Duration::from_millis(500)).expect("quiet");
    assert_eq!(r.title, "BUG: workqueue lockup");
    assert!(r
        .excerpt
        .ends_with("pending: vmstat_shepherd, psi_avgs_work"));
    assert!(!d.in_report());
    assert!(d.poll(t0 + Duration::from_secs(5)).is_none());
    assert!(d.flush().is_none());
}

#[test]
fn late_line_after_deadline_closes_the_old_report_first() {
    let t0 = Instant::now();
    let mut d = CrashDetector::default();
    d.feed_line(first_message_line(HUNG_TASK_NO_TRACE), t0);
    let r = d
        .feed_line(
            "Kernel panic - not syncing: hung_task: blocked tasks",
            t0 + Duration::from_secs(3),
        )
        .expect("old report");
    assert_eq!(r.title, "INFO: task hung");
    assert!(!r.excerpt.contains("Kernel panic"));
    assert_eq!(
        d.flush().unwrap().title,
        "kernel panic: hung_task: blocked tasks"
    );
}

#[test]
fn long_reports_are_truncated() {
    let mut d = CrashDetector::new(CrashConfig {
        max_lines: 10,
        ..CrashConfig::default()
    });
    let now = Instant::now();
    assert!(d
        .feed_line("WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2", now)
        .is_none());
    let mut out = None;
    for i in 0..20 {
        if let Some(r) = d.feed_line(&format!("line {i}"), now) {
            out = Some(r);
            break;
        }
    }
    let r = out.expect("truncated report");
    assert_eq!(r.excerpt.lines().count(), 11);
    assert!(r.excerpt.ends_with("[... report truncated by bootrig ...]"));
    let long = format!("Kernel panic - not syncing: {}", "x".repeat(5000));
    d.feed_line(&long, now);
    assert!(d.flush().unwrap().excerpt.len() <= MAX_LINE);
}

#[test]
fn symbols_lose_compiler_suffixes() {
    assert_eq!(base_symbol("__flush_work.isra.0"), "__flush_work");
    assert_eq!(base_symbol("ext4_write_inode.cold"), "ext4_write_inode");
    assert!(skipped("__schedule", Skip::Sched));
    assert!(!skipped("__schedule", Skip::Common));
    assert!(skipped("dump_stack_lvl", Skip::Common));
    assert!(!skipped("download_firmware", Skip::Sched));
}

#[test]
fn kernel_timestamp_reads_the_time_since_boot() {
    use std::time::Duration;
    assert_eq!(
        kernel_timestamp("[   12.500000] virtio_blk virtio1: [vda]"),
        Some(Duration::from_millis(12_500))
    );
    assert_eq!(
        kernel_timestamp("[0.000001] x"),
        Some(Duration::from_micros(1))
    );
    // Looks like the kernel's, but is no duration.
    let absurd = "[99999999999999999999999999.0] forged";
    assert!(has_kernel_timestamp(absurd));
    assert_eq!(kernel_timestamp(absurd), None);
    for not in [
        "[    T1] x",
        "[1.] x",
        "[.5] x",
        "12.5 x",
        "[1.5",
        "[1e3.0] x",
        "",
    ] {
        assert_eq!(kernel_timestamp(not), None, "{not:?}");
    }
}

#[test]
fn prefilter_is_derived_for_every_pattern() {
    let literals = prefilter::prefix_literals(PATTERNS.iter().map(|p| p.start))
        .expect("every start pattern has finite prefix literals");
    assert!(Compiled::new().filter.is_some());
    // Each pattern contributes: its fixture's first line begins with one.
    for (name, text, ..) in FIXTURES {
        let first = first_message_line(text);
        assert!(
            literals.iter().any(|l| first.as_bytes().starts_with(l)),
            "{name}: {first:?} begins with no literal of {literals:?}"
        );
    }
    // A pattern that is not anchored, or starts with a class too wide to
    // list, gets no filter (every line then goes to the regexes).
    assert_eq!(prefilter::prefix_literals(["BUG: x"]), None);
    assert_eq!(prefilter::prefix_literals([r"^\w+ x"]), None);
}

#[test]
fn prefilter_rejects_only_lines_no_pattern_matches_on_the_fixtures() {
    let c = Compiled::new();
    let filter = c.filter.as_ref().unwrap();
    // The real boot log in `shared/fixtures`, above the crate.
    let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|a| a.join("shared/fixtures/serial/debian12-systemd-boot-login.log"))
        .find_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let fixtures = FIXTURES.iter().flat_map(|f| f.1.lines());
    let mut passed = 0;
    for line in log.lines().chain(fixtures) {
        let msg = kernel_message(line.trim_end_matches('\r'));
        if filter.may_match(msg) {
            passed += 1;
        } else {
            assert!(!c.starts.is_match(msg), "prefilter rejected {msg:?}");
        }
    }
    assert!(passed >= FIXTURES.len());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
    /// Lines built from the fixtures' report lines and the literals (cut,
    /// with a byte changed, with any tail): whatever the prefilter rejects,
    /// the regex set rejects too.
    #[test]
    fn prefilter_never_rejects_a_start_line(
        pick in 0usize..1000,
        cut in 0usize..64,
        flip in proptest::option::of((0usize..64, proptest::prelude::any::<u8>())),
        tail in "[ -~]{0,40}",
    ) {
        let mut sources: Vec<Vec<u8>> = FIXTURES
            .iter()
            .map(|f| first_message_line(f.1).as_bytes().to_vec())
            .collect();
        sources.extend(prefilter::prefix_literals(PATTERNS.iter().map(|p| p.start)).unwrap());
        let mut line = sources[pick % sources.len()].clone();
        line.truncate(line.len() - cut % (line.len() + 1));
        if let Some((at, b)) = flip {
            if !line.is_empty() {
                let at = at % line.len();
                line[at] = b;
            }
        }
        let mut line = String::from_utf8_lossy(&line).into_owned();
        line.push_str(&tail);
        let d = CrashDetector::default();
        if !d.re.filter.as_ref().unwrap().may_match(&line) {
            proptest::prop_assert!(!d.re.starts.is_match(&line), "prefilter rejected {:?}", line);
        }
    }
}
