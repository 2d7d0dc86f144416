/*
 * The subsets of kernel structs, enums and typedefs oomtrace resolves from
 * BTF, with offsets chosen here and pinned by _Static_assert, so the BTF
 * resolver's unit tests (capture/btf.rs) check against this file, not
 * against what the resolver computed. Not a copy of any kernel: members
 * oomtrace does not read are padding.
 *
 * Two variants:
 * - default: Linux 6.15+ shapes (rss_stat as percpu_counter[], kernfs_node
 *   __parent, mark_victim passing the task, oom_kill_process present);
 * - -DOLD: before 6.2 / 6.9 / 6.15 (struct mm_rss_stat of atomic_long_t,
 *   kernfs_node parent, mark_victim passing only a pid), with both enums
 *   renumbered so a resolver that assumed the kernel's numbers would fail.
 *
 * Regenerate (clang from Debian's clang-22; the .BTF section is the fixture):
 *   cd oomtrace/src/capture/testdata && ./regenerate.sh
 */
typedef unsigned int u32;
typedef int pid_t;
typedef unsigned int uid_t;
typedef long long s64;
typedef unsigned long long u64;
typedef struct { long counter; } atomic_long_t;

/* btfparse sizes pointers as half a list_head: without it, an index into an
 * array of pointers (css_set.subsys[i]) does not resolve. */
struct list_head {
	struct list_head *next, *prev;
};

#define OFFSET(type, member, at) \
	_Static_assert(__builtin_offsetof(struct type, member) == at, #type "." #member)

enum {
	MM_FILEPAGES,
	MM_ANONPAGES,
	MM_SWAPENTS,
	MM_SHMEMPAGES,
	NR_MM_COUNTERS
} mm_counters;

enum cgroup_subsys_id {
	cpuset_cgrp_id,
	cpu_cgrp_id,
	cpuacct_cgrp_id,
	io_cgrp_id,
	memory_cgrp_id,
	CGROUP_SUBSYS_COUNT
} cgroup_subsys_ids;

enum memcg_memory_event {
	MEMCG_LOW,
	MEMCG_HIGH,
	MEMCG_MAX,
	MEMCG_OOM,
	MEMCG_OOM_KILL,
	MEMCG_OOM_GROUP_KILL,
	MEMCG_NR_MEMORY_EVENTS
} memcg_memory_events;

#ifdef OLD
enum oom_constraint {
	CONSTRAINT_NONE = 10,
	CONSTRAINT_CPUSET = 11,
	CONSTRAINT_MEMORY_POLICY = 12,
	CONSTRAINT_MEMCG = 13
};
enum trace_signal_result {
	TRACE_SIGNAL_DELIVERED = 20,
	TRACE_SIGNAL_IGNORED,
	TRACE_SIGNAL_ALREADY_PENDING,
	TRACE_SIGNAL_OVERFLOW_FAIL,
	TRACE_SIGNAL_LOSE_INFO
} trace_signal_results;
#else
enum oom_constraint {
	CONSTRAINT_NONE,
	CONSTRAINT_CPUSET,
	CONSTRAINT_MEMORY_POLICY,
	CONSTRAINT_MEMCG
};
enum trace_signal_result {
	TRACE_SIGNAL_DELIVERED,
	TRACE_SIGNAL_IGNORED,
	TRACE_SIGNAL_ALREADY_PENDING,
	TRACE_SIGNAL_OVERFLOW_FAIL,
	TRACE_SIGNAL_LOSE_INFO
} trace_signal_results;
#endif

struct percpu_counter {
	int lock;
	s64 count;
	s64 *counters;
};
OFFSET(percpu_counter, count, 8);
OFFSET(percpu_counter, counters, 16);

struct mm_rss_stat {
	atomic_long_t count[NR_MM_COUNTERS];
};

struct mm_struct {
	char __pad0[8];
	unsigned long total_vm;
	atomic_long_t pgtables_bytes;
	unsigned long arg_start, arg_end, env_start, env_end;
#ifdef OLD
	struct mm_rss_stat rss_stat;
#else
	struct percpu_counter rss_stat[NR_MM_COUNTERS];
#endif
};
OFFSET(mm_struct, total_vm, 8);
OFFSET(mm_struct, pgtables_bytes, 16);
OFFSET(mm_struct, arg_start, 24);
OFFSET(mm_struct, arg_end, 32);
OFFSET(mm_struct, env_start, 40);
OFFSET(mm_struct, env_end, 48);
#ifdef OLD
OFFSET(mm_struct, rss_stat.count[MM_ANONPAGES], 64);
OFFSET(mm_struct, rss_stat.count[MM_FILEPAGES], 56);
OFFSET(mm_struct, rss_stat.count[MM_SHMEMPAGES], 80);
#else
OFFSET(mm_struct, rss_stat[MM_ANONPAGES], 80);
OFFSET(mm_struct, rss_stat[MM_FILEPAGES], 56);
OFFSET(mm_struct, rss_stat[MM_SHMEMPAGES], 128);
#endif

struct signal_struct {
	char __pad0[64];
	short oom_score_adj;
};
OFFSET(signal_struct, oom_score_adj, 64);

struct kernfs_node {
	int count;
#ifdef OLD
	struct kernfs_node *parent;
#else
	struct kernfs_node *__parent;
#endif
	const char *name;
	char __pad0[48];
	u64 id;
};
OFFSET(kernfs_node, name, 16);
OFFSET(kernfs_node, id, 72);

struct cgroup {
	int __pad0;
	int level;
	struct kernfs_node *kn;
};
OFFSET(cgroup, level, 4);
OFFSET(cgroup, kn, 8);

struct cgroup_subsys_state {
	struct cgroup *cgroup;
	char __pad0[8];
	struct cgroup_subsys_state *parent;
};
OFFSET(cgroup_subsys_state, cgroup, 0);
OFFSET(cgroup_subsys_state, parent, 16);

struct css_set {
	char __pad0[8];
	struct cgroup_subsys_state *subsys[CGROUP_SUBSYS_COUNT];
};
OFFSET(css_set, subsys[memory_cgrp_id], 40);

/* A pid's number in each namespace from the root (level 0) down to its
 * own (level). */
struct upid {
	int nr;
	void *ns;
};
_Static_assert(sizeof(struct upid) == 16, "upid size");
OFFSET(upid, nr, 0);

struct pid {
	int count;
	unsigned int level;
	char __pad0[40];
	struct upid numbers[];
};
OFFSET(pid, level, 4);
OFFSET(pid, numbers, 48);

struct task_struct {
	char __pad0[24];
	void *stack;
	char __pad1[992];
	struct mm_struct *mm;
	int exit_code;
	pid_t pid;
	pid_t tgid;
	struct task_struct *group_leader;
	u64 start_boottime;
	struct signal_struct *signal;
	char comm[16];
	struct css_set *cgroups;
	struct pid *thread_pid;
};
OFFSET(task_struct, stack, 24);
OFFSET(task_struct, mm, 1024);
OFFSET(task_struct, exit_code, 1032);
OFFSET(task_struct, pid, 1036);
OFFSET(task_struct, tgid, 1040);
OFFSET(task_struct, group_leader, 1048);
OFFSET(task_struct, start_boottime, 1056);
OFFSET(task_struct, signal, 1064);
OFFSET(task_struct, comm, 1072);
OFFSET(task_struct, cgroups, 1088);
OFFSET(task_struct, thread_pid, 1096);


struct page_counter {
	atomic_long_t usage;
	unsigned long max;
	unsigned long watermark;
	unsigned long failcnt;
};

struct mem_cgroup {
	struct cgroup_subsys_state css;
	struct page_counter memory;
#ifdef OLD
	char __pad0[8];
#else
	_Bool oom_group;
	char __pad0[7];
#endif
	atomic_long_t memory_events[MEMCG_NR_MEMORY_EVENTS];
};
#ifndef OLD
OFFSET(mem_cgroup, oom_group, 56);
#endif
OFFSET(mem_cgroup, css, 0);
OFFSET(mem_cgroup, memory.usage, 24);
OFFSET(mem_cgroup, memory.max, 32);
OFFSET(mem_cgroup, memory.watermark, 40);
OFFSET(mem_cgroup, memory.failcnt, 48);
OFFSET(mem_cgroup, memory_events[MEMCG_OOM_KILL], 96);

struct oom_control {
	void *zonelist;
	void *nodemask;
	struct mem_cgroup *memcg;
	u32 gfp_mask;
	int order;
	unsigned long totalpages;
	struct task_struct *chosen;
	long chosen_points;
	enum oom_constraint constraint;
};
OFFSET(oom_control, memcg, 16);
OFFSET(oom_control, gfp_mask, 24);
OFFSET(oom_control, order, 28);
OFFSET(oom_control, totalpages, 32);
OFFSET(oom_control, chosen, 40);
OFFSET(oom_control, chosen_points, 48);
OFFSET(oom_control, constraint, 56);

struct kernel_siginfo {
	int si_signo;
	int si_errno;
	int si_code;
};
OFFSET(kernel_siginfo, si_code, 8);

struct bpf_array {
	char __pad0[256];
	union {
		char value[0];
		void *ptrs[0];
		void *pptrs[0];
	};
};
OFFSET(bpf_array, pptrs, 256);

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

#ifdef OLD
struct trace_event_raw_mark_victim {
	struct trace_entry ent;
	int pid;
	char __data[0];
};
typedef void (*btf_trace_mark_victim)(void *, int);
#else
struct trace_event_raw_mark_victim {
	struct trace_entry ent;
	int pid;
	u32 __data_loc_comm;
	unsigned long total_vm;
	char __data[0];
};
typedef void (*btf_trace_mark_victim)(void *, struct task_struct *, uid_t);

/* Only its presence in BTF matters (fentry's target). */
int oom_kill_process(struct oom_control *oc, const char *message)
{
	return oc->order;
}
#endif

/*
 * Globals make clang emit every type above into .BTF: by value, as a
 * struct reached only through a pointer may be emitted as a forward
 * declaration. Named apart from the types: btfparse's own name index
 * keeps one type per name, and a VAR called list_head would hide the struct.
 */
struct list_head emit_list_head;
struct task_struct emit_task;
struct pid emit_pid;
struct upid emit_upid;
struct mm_struct emit_mm;
struct signal_struct emit_signal;
struct percpu_counter emit_percpu_counter;
struct mm_rss_stat emit_mm_rss_stat;
struct kernfs_node emit_kernfs_node;
struct cgroup emit_cgroup;
struct cgroup_subsys_state emit_css;
struct css_set emit_css_set;
struct mem_cgroup emit_mem_cgroup;
struct oom_control emit_oom_control;
struct kernel_siginfo emit_kernel_siginfo;
struct bpf_array emit_bpf_array;
struct trace_event_raw_mark_victim emit_trace_event_raw_mark_victim;
btf_trace_mark_victim emit_mark_victim_hook;
enum oom_constraint emit_oom_constraints;
