// xskfwd: a minimal AF_XDP forwarder in C, the reference the appliance's Go
// data path is measured against. Raw syscalls only (no libbpf/libxdp): the
// XDP program (redirect to the XSKMAP by rx_queue_index, XDP_PASS when the
// slot is empty) is the same five instructions the appliance loads, attached
// through a BPF link.
//
// It runs the same algorithm as an appliance lane, on one core:
//   - one UMEM shared (XDP_SHARED_UMEM) by every socket, each socket with
//     its own fill and completion ring; a frame moves between sockets by
//     moving its descriptor, never by copying it;
//   - frames received on the "in" device (the host side, bond0-dp) go to
//     out[hash % n] with the layer3+4 hash of the bonding driver
//     (bond_xmit_hash: ports ^ saddr ^ daddr, folded, >> 1);
//     frames received on an "out" device (a member) go to "in";
//   - batch 64, need_wakeup, copy mode by default; TX kicked with sendto,
//     ceil(outstanding/budget) times, where the budget is what copy mode
//     sends per call: the batch size when the kernel takes
//     XDP_MAX_TX_SKB_BUDGET (Linux >= 6.16), else its default of 32; fill
//     kicked with recvfrom only when the kernel asks (need_wakeup);
//   - completions are reaped into a free-frame stack that refills every
//     fill ring.
// --rxdrop receives on "in" only and puts every frame back on the fill ring.
//
// --sg (or XSKFWD_SG=1 in the environment): multi-buffer, for MTUs above
// what one 2048-byte UMEM frame holds (jumbo frames). The sockets are bound
// with XDP_USE_SG (Linux >= 6.6) and the XDP programs loaded as xdp.frags
// (BPF_F_XDP_HAS_FRAGS); a frame is then a chain of descriptors, every one
// but the last marked XDP_PKT_CONTD. Chains move RX -> TX whole: all
// fragments, in order, with their flags; the hash reads the first fragment;
// a chain is never split across two TX reservations (what does not fit is
// dropped whole, counted in drop_tx_full); a chain still incomplete at the
// end of the RX ring stays there until its last fragment arrives, one
// longer than MAX_FRAGS descriptors is dropped whole (drop_long).
//
// Build: make -C perf/ref   (cc -O2; needs only the Linux UAPI headers,
// Debian package linux-libc-dev).
//
// Usage: xskfwd -i IN [-o OUT[,OUT...]] [--rxdrop] [--sg] [-c CPU] [-q QUEUE]
//               [-b BATCH] [-r RING] [-s SECONDS] [--idle S] [-z] [-g]
// Prints one summary line of metric=value pairs on stdout when it stops
// (SIGINT/SIGTERM, -s, --idle), and a counters line on each SIGUSR1.
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif

#define MAX_SOCKS 9
#define MAX_BATCH 1024
#define COPY_TX_PER_KICK 32 /* the kernel's TX_BATCH_SIZE: copy-mode budget per sendto by default */
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9 /* include/uapi/linux/if_xdp.h, Linux >= 6.16 */
#endif
#define FRAME_SIZE 2048
#ifndef XDP_USE_SG
#define XDP_USE_SG (1 << 4) /* include/uapi/linux/if_xdp.h, Linux >= 6.6 */
#endif
#ifndef XDP_PKT_CONTD
#define XDP_PKT_CONTD (1 << 0) /* xdp_desc.options: the frame continues in the next descriptor */
#endif
#ifndef BPF_F_XDP_HAS_FRAGS
#define BPF_F_XDP_HAS_FRAGS (1U << 5)
#endif
/* longest chain handled: the kernel's copy mode makes at most 1 + MAX_SKB_FRAGS (17) */
#define MAX_FRAGS 18

struct ring {
	uint32_t cached_prod, cached_cons, mask, size;
	uint32_t *producer, *consumer, *flags;
	void *ring;
	void *map;
	size_t map_len;
};

struct counters {
	uint64_t rx, tx, drop_txfull, drop_long, kicks;
	uint64_t rx_descs, tx_descs; /* descriptors (= frames unless multi-buffer) */
};

struct sock {
	const char *name;
	int ifindex, fd, map_fd, prog_fd, link_fd;
	struct ring rx, tx, fill, comp;
	struct xdp_desc pend[(MAX_BATCH + MAX_FRAGS) * MAX_SOCKS];
	uint32_t npend;
	uint32_t skip; /* dropping the rest of an over-long RX chain */
	uint32_t tx_budget; /* frames the kernel sends per TX kick in copy mode */
	struct counters c;
};

static struct sock socks[MAX_SOCKS];
static int nsocks;
static uint8_t *umem;
static uint64_t *freestack;
static uint32_t nfree, nframes;
static volatile sig_atomic_t stop, dump;
static int sg; /* multi-buffer: XDP_USE_SG, xdp.frags, descriptor chains */
static uint64_t total_rx; /* written by the loop, read by the sampler */

static void die(const char *what)
{
	fprintf(stderr, "xskfwd: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- rings (the producer/consumer protocol of libxdp's xsk.h) ---- */

static inline uint32_t load_acq(uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void store_rel(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline uint32_t prod_free(struct ring *r, uint32_t n)
{
	uint32_t free = r->cached_cons - r->cached_prod;
	if (free >= n)
		return free;
	r->cached_cons = load_acq(r->consumer) + r->size;
	return r->cached_cons - r->cached_prod;
}

static inline uint32_t prod_reserve(struct ring *r, uint32_t n, uint32_t *idx)
{
	uint32_t free = prod_free(r, n);
	if (n > free)
		n = free;
	*idx = r->cached_prod;
	r->cached_prod += n;
	return n;
}

static inline void prod_submit(struct ring *r) { store_rel(r->producer, r->cached_prod); }

static inline uint32_t cons_peek(struct ring *r, uint32_t n, uint32_t *idx)
{
	uint32_t avail = r->cached_prod - r->cached_cons;
	if (avail == 0) {
		r->cached_prod = load_acq(r->producer);
		avail = r->cached_prod - r->cached_cons;
	}
	if (n > avail)
		n = avail;
	*idx = r->cached_cons;
	return n;
}

static inline void cons_release(struct ring *r, uint32_t n)
{
	r->cached_cons += n;
	store_rel(r->consumer, r->cached_cons);
}

static inline int need_wakeup(struct ring *r) { return *r->flags & XDP_RING_NEED_WAKEUP; }
static inline uint64_t *addr_at(struct ring *r, uint32_t i) { return &((uint64_t *)r->ring)[i & r->mask]; }
static inline struct xdp_desc *desc_at(struct ring *r, uint32_t i) { return &((struct xdp_desc *)r->ring)[i & r->mask]; }

static void map_ring(int fd, struct ring *r, struct xdp_ring_offset *off, uint64_t pgoff, uint32_t size, size_t elem, int producer)
{
	r->map_len = off->desc + size * elem;
	r->map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
	if (r->map == MAP_FAILED)
		die("mmap ring");
	r->producer = (uint32_t *)((uint8_t *)r->map + off->producer);
	r->consumer = (uint32_t *)((uint8_t *)r->map + off->consumer);
	r->flags = (uint32_t *)((uint8_t *)r->map + off->flags);
	r->ring = (uint8_t *)r->map + off->desc;
	r->size = size;
	r->mask = size - 1;
	r->cached_prod = *r->producer;
	r->cached_cons = *r->consumer;
	if (producer)
		r->cached_cons += size;
}

/* ---- BPF: XSKMAP + redirect program + link, raw bpf(2) ---- */

static int sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static void attach_prog(struct sock *s, int queue, int generic)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_XSKMAP;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = queue + 1;
	s->map_fd = sys_bpf(BPF_MAP_CREATE, &a);
	if (s->map_fd < 0)
		die("BPF_MAP_CREATE xskmap");

	struct bpf_insn insns[] = {
		/* r2 = ctx->rx_queue_index */
		{.code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_1, .off = 16},
		/* r1 = &xskmap */
		{.code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1, .src_reg = BPF_PSEUDO_MAP_FD, .imm = s->map_fd},
		{0},
		/* r3 = XDP_PASS (fallback when the slot is empty) */
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = XDP_PASS},
		{.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map},
		{.code = BPF_JMP | BPF_EXIT},
	};
	static char log[4096];
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_XDP;
	a.insns = (uint64_t)(uintptr_t)insns;
	a.insn_cnt = sizeof(insns) / sizeof(insns[0]);
	a.license = (uint64_t)(uintptr_t) "GPL";
	a.log_buf = (uint64_t)(uintptr_t)log;
	a.log_size = sizeof(log);
	a.log_level = 1;
	a.prog_flags = sg ? BPF_F_XDP_HAS_FRAGS : 0;
	memcpy(a.prog_name, "xskfwd", 7);
	s->prog_fd = sys_bpf(BPF_PROG_LOAD, &a);
	if (s->prog_fd < 0) {
		fprintf(stderr, "%s\n", log);
		die("BPF_PROG_LOAD");
	}
	memset(&a, 0, sizeof(a));
	a.link_create.prog_fd = s->prog_fd;
	a.link_create.target_ifindex = s->ifindex;
	a.link_create.attach_type = BPF_XDP;
	a.link_create.flags = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
	s->link_fd = sys_bpf(BPF_LINK_CREATE, &a);
	if (s->link_fd < 0)
		die("BPF_LINK_CREATE (XDP attach; is another program attached?)");
}

static void map_set(struct sock *s, int queue)
{
	union bpf_attr a;
	uint32_t key = queue, val = s->fd;
	memset(&a, 0, sizeof(a));
	a.map_fd = s->map_fd;
	a.key = (uint64_t)(uintptr_t)&key;
	a.value = (uint64_t)(uintptr_t)&val;
	if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) < 0)
		die("XSKMAP update");
}

/* ---- sockets ---- */

/* set_tx_budget asks the kernel to send up to batch descriptors per TX kick
 * in copy mode (clamped to what it accepts: 32 .. TX ring size) and returns
 * the budget in effect; a kernel without the option (ENOPROTOOPT) or one that
 * refuses the value (EINVAL, EACCES) keeps its default of 32. */
static uint32_t set_tx_budget(int fd, uint32_t batch, uint32_t ring)
{
	unsigned int b = batch < COPY_TX_PER_KICK ? COPY_TX_PER_KICK : batch;
	if (b > ring)
		b = ring;
	if (b < COPY_TX_PER_KICK || setsockopt(fd, SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &b, sizeof(b)) < 0)
		return COPY_TX_PER_KICK;
	return b;
}

static void open_sock(struct sock *s, int queue, uint32_t ring, uint32_t batch, int zerocopy, struct sock *shared)
{
	s->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		die("socket(AF_XDP)");
	if (!shared) {
		struct xdp_umem_reg reg = {
			.addr = (uint64_t)(uintptr_t)umem,
			.len = (uint64_t)nframes * FRAME_SIZE,
			.chunk_size = FRAME_SIZE,
			.headroom = 0,
		};
		if (setsockopt(s->fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) < 0)
			die("XDP_UMEM_REG");
	}
	int opts[] = {XDP_UMEM_FILL_RING, XDP_UMEM_COMPLETION_RING, XDP_RX_RING, XDP_TX_RING};
	for (int i = 0; i < 4; i++)
		if (setsockopt(s->fd, SOL_XDP, opts[i], &ring, sizeof(ring)) < 0)
			die("ring size");
	s->tx_budget = set_tx_budget(s->fd, batch, ring);
	struct xdp_mmap_offsets off;
	socklen_t ol = sizeof(off);
	if (getsockopt(s->fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &ol) < 0)
		die("XDP_MMAP_OFFSETS");
	map_ring(s->fd, &s->fill, &off.fr, XDP_UMEM_PGOFF_FILL_RING, ring, sizeof(uint64_t), 1);
	map_ring(s->fd, &s->comp, &off.cr, XDP_UMEM_PGOFF_COMPLETION_RING, ring, sizeof(uint64_t), 0);
	map_ring(s->fd, &s->rx, &off.rx, XDP_PGOFF_RX_RING, ring, sizeof(struct xdp_desc), 0);
	map_ring(s->fd, &s->tx, &off.tx, XDP_PGOFF_TX_RING, ring, sizeof(struct xdp_desc), 1);
	struct sockaddr_xdp sa = {.sxdp_family = AF_XDP, .sxdp_ifindex = s->ifindex, .sxdp_queue_id = queue};
	if (shared) {
		sa.sxdp_flags = XDP_SHARED_UMEM;
		sa.sxdp_shared_umem_fd = shared->fd;
	} else {
		/* sockets sharing the UMEM inherit these flags (passing any is EINVAL) */
		sa.sxdp_flags = XDP_USE_NEED_WAKEUP | (zerocopy ? XDP_ZEROCOPY : XDP_COPY) | (sg ? XDP_USE_SG : 0);
	}
	if (bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die(sg && errno == EINVAL ? "bind AF_XDP with XDP_USE_SG (multi-buffer needs Linux >= 6.6)" : "bind AF_XDP");
}

/* ---- the loop ---- */

static inline uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* bond_xmit_hash, layer3+4, IPv4 only (others: layer2 fallback) */
static inline uint32_t l34_hash(const uint8_t *f, uint32_t len)
{
	uint16_t proto = (uint16_t)(f[12] << 8 | f[13]);
	if (proto == 0x0800 && len >= 34) {
		const uint8_t *ip = f + 14;
		uint32_t ihl = (ip[0] & 0xf) * 4;
		uint32_t h = 0;
		int frag = (ip[6] & 0x3f) || ip[7];
		if (!frag && (ip[9] == 6 || ip[9] == 17) && len >= 14 + ihl + 4)
			h = get_u32(ip + ihl);
		h ^= get_u32(ip + 12) ^ get_u32(ip + 16);
		h ^= h >> 16;
		h ^= h >> 8;
		return h >> 1;
	}
	return f[5] ^ f[11] ^ proto;
}

static inline void freeframe(uint64_t a) { freestack[nfree++] = a & ~(uint64_t)(FRAME_SIZE - 1); }

/* enqueue queues the frame ch[0..n) (one descriptor, or a chain whose
 * descriptors but the last carry XDP_PKT_CONTD) for to's TX ring; when the
 * pending buffer cannot take all of it, the whole frame is dropped */
static inline void enqueue(struct sock *to, struct sock *from, const struct xdp_desc *ch, uint32_t n)
{
	if (to->npend + n > sizeof(to->pend) / sizeof(to->pend[0])) {
		for (uint32_t i = 0; i < n; i++)
			freeframe(ch[i].addr);
		from->c.drop_txfull++;
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		to->pend[to->npend++] = ch[i];
}

/* chain_end: the end of the chain that starts at desc i of the RX ring
 * (index of the descriptor after its last one), or 0 when it is not
 * complete within the n descriptors from idx */
static inline uint32_t chain_end(struct ring *rx, uint32_t idx, uint32_t i, uint32_t n)
{
	for (; i < n; i++)
		if (!(desc_at(rx, idx + i)->options & XDP_PKT_CONTD))
			return i + 1;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t polls; /* non-empty receive polls (rxdrop) */
static double kick_s;  /* time spent in TX kicks (sendto): in copy mode the kernel's transmit path */
static double busy_s;  /* time spent handling them */

/* SIGUSR1: print the counters so far (one line, stdout) */
static void dump_counters(void)
{
	uint64_t rx_out = 0, tx_out = 0;
	for (int s = 1; s < nsocks; s++) {
		rx_out += socks[s].c.rx;
		tx_out += socks[s].c.tx;
	}
	uint64_t drops = 0;
	for (int s = 0; s < nsocks; s++)
		drops += socks[s].c.drop_txfull + socks[s].c.drop_long;
	printf("ref=xskfwd-counters t=%.6f rx_in=%llu tx_out=%llu rx_out=%llu tx_in=%llu drops=%llu tx_kick_s=%.6f\n", now_s(),
	       (unsigned long long)socks[0].c.rx, (unsigned long long)tx_out, (unsigned long long)rx_out,
	       (unsigned long long)socks[0].c.tx, (unsigned long long)drops, kick_s);
	fflush(stdout);
}

static void loop(int rxdrop, uint32_t batch)
{
	int nout = nsocks - 1;
	while (!stop) {
		uint64_t got = 0;
		if (dump) {
			dump = 0;
			dump_counters();
		}
		for (int s = 0; s < nsocks; s++) {
			struct sock *k = &socks[s];
			/* multi-buffer: room to complete the last chain begun within the batch */
			uint32_t idx, n = cons_peek(&k->rx, sg ? batch + MAX_FRAGS : batch, &idx);
			if (!n)
				continue;
			if (rxdrop) {
				double t0 = now_s();
				uint32_t fidx, f = prod_reserve(&k->fill, n, &fidx);
				uint32_t frames = 0;
				for (uint32_t i = 0; i < f; i++) {
					struct xdp_desc *d = desc_at(&k->rx, idx + i);
					*addr_at(&k->fill, fidx + i) = d->addr & ~(uint64_t)(FRAME_SIZE - 1);
					frames += !(d->options & XDP_PKT_CONTD); /* a chain counts once */
				}
				prod_submit(&k->fill);
				cons_release(&k->rx, f);
				k->c.rx += frames;
				k->c.rx_descs += f;
				got += frames;
				polls++;
				busy_s += now_s() - t0;
				continue;
			}
			if (!sg) {
				for (uint32_t i = 0; i < n; i++) {
					struct xdp_desc d = *desc_at(&k->rx, idx + i);
					if (s == 0) {
						uint8_t *frame = umem + d.addr;
						enqueue(&socks[1 + l34_hash(frame, d.len) % nout], k, &d, 1);
					} else {
						enqueue(&socks[0], k, &d, 1);
					}
				}
				cons_release(&k->rx, n);
				k->c.rx += n;
				k->c.rx_descs += n;
				got += n;
				continue;
			}
			/* multi-buffer: whole chains, the hash over the first fragment */
			uint32_t i = 0, frames = 0;
			for (; i < n && k->skip; i++) {
				struct xdp_desc *d = desc_at(&k->rx, idx + i);
				freeframe(d->addr);
				if (!(d->options & XDP_PKT_CONTD))
					k->skip = 0;
			}
			while (i < n && i < batch) {
				uint32_t e = chain_end(&k->rx, idx, i, n);
				if (!e) {
					if (n - i >= MAX_FRAGS) {
						/* longer than any chain we forward: drop it whole */
						for (; i < n; i++)
							freeframe(desc_at(&k->rx, idx + i)->addr);
						k->skip = 1;
						k->c.drop_long++;
					}
					break; /* else incomplete: it stays on the ring */
				}
				struct xdp_desc ch[MAX_FRAGS];
				uint32_t m = e - i;
				if (m > MAX_FRAGS) {
					for (; i < e; i++)
						freeframe(desc_at(&k->rx, idx + i)->addr);
					k->c.drop_long++;
					continue;
				}
				for (uint32_t j = 0; j < m; j++)
					ch[j] = *desc_at(&k->rx, idx + i + j);
				struct sock *to = &socks[0];
				if (s == 0)
					to = &socks[1 + l34_hash(umem + ch[0].addr, ch[0].len) % nout];
				enqueue(to, k, ch, m);
				frames++;
				i = e;
			}
			if (i)
				cons_release(&k->rx, i);
			k->c.rx += frames;
			k->c.rx_descs += i;
			got += frames;
		}
		if (got)
			__atomic_store_n(&total_rx, total_rx + got, __ATOMIC_RELAXED);
		if (rxdrop) {
			struct sock *k = &socks[0];
			if (!got && need_wakeup(&k->fill))
				recvfrom(k->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
			continue;
		}
		/* flush */
		for (int s = 0; s < nsocks; s++) {
			struct sock *k = &socks[s];
			if (k->npend) {
				/* never a part of a chain: what does not fit whole is dropped whole */
				uint32_t r = prod_free(&k->tx, k->npend);
				if (r >= k->npend)
					r = k->npend;
				else
					while (r > 0 && (k->pend[r - 1].options & XDP_PKT_CONTD))
						r--;
				uint32_t idx, frames = 0;
				r = prod_reserve(&k->tx, r, &idx);
				for (uint32_t i = 0; i < r; i++) {
					*desc_at(&k->tx, idx + i) = k->pend[i];
					frames += !(k->pend[i].options & XDP_PKT_CONTD);
				}
				if (r)
					prod_submit(&k->tx);
				for (uint32_t i = r; i < k->npend; i++) {
					freeframe(k->pend[i].addr);
					k->c.drop_txfull += !(k->pend[i].options & XDP_PKT_CONTD);
				}
				k->c.tx += frames;
				k->c.tx_descs += r;
				k->npend = 0;
			}
			uint32_t out = k->tx.cached_prod - load_acq(k->tx.consumer);
			if (out && need_wakeup(&k->tx)) {
				double t0 = now_s();
				for (uint32_t i = 0; i < (out + k->tx_budget - 1) / k->tx_budget; i++) {
					k->c.kicks++;
					if (sendto(k->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) < 0 && errno != EAGAIN &&
					    errno != EBUSY && errno != ENOBUFS && errno != ENETDOWN)
						break;
				}
				kick_s += now_s() - t0;
			}
		}
		/* completions */
		for (int s = 0; s < nsocks; s++) {
			struct sock *k = &socks[s];
			uint32_t idx, n = cons_peek(&k->comp, k->comp.size, &idx);
			for (uint32_t i = 0; i < n; i++)
				freeframe(*addr_at(&k->comp, idx + i));
			if (n)
				cons_release(&k->comp, n);
		}
		/* refill */
		for (int s = 0; s < nsocks; s++) {
			struct sock *k = &socks[s];
			uint32_t want = prod_free(&k->fill, k->fill.size);
			if (want > nfree)
				want = nfree;
			if (!want)
				continue;
			uint32_t idx, r = prod_reserve(&k->fill, want, &idx);
			for (uint32_t i = 0; i < r; i++)
				*addr_at(&k->fill, idx + i) = freestack[--nfree];
			prod_submit(&k->fill);
			if (need_wakeup(&k->fill))
				recvfrom(k->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
		}
	}
}

/* ---- rate sampling: steady-state rate of received frames ---- */

struct sampler {
	double seconds, idle;
	double first, last; /* active window */
	double sum_dt;
	uint64_t sum_n;
	int nactive;
	double dts[100000];
	uint64_t ns[100000];
};
static struct sampler smp;

static double t_start;

/* run-queue wait of the calling thread (ns), /proc/thread-self/schedstat */
static long long runq_wait_ns(void)
{
	long long run = 0, wait = 0;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	if (!f)
		return 0;
	if (fscanf(f, "%lld %lld", &run, &wait) != 2)
		wait = 0;
	fclose(f);
	return wait;
}

static void *sampler_main(void *arg)
{
	(void)arg;
	double lt = now_s();
	uint64_t lv = 0;
	while (!stop) {
		usleep(100000);
		double t = now_s();
		uint64_t v = __atomic_load_n(&total_rx, __ATOMIC_RELAXED);
		if (v > lv && smp.nactive < 100000) {
			if (!smp.nactive)
				smp.first = lt;
			smp.dts[smp.nactive] = t - lt;
			smp.ns[smp.nactive] = v - lv;
			smp.nactive++;
			smp.last = t;
		}
		lt = t;
		lv = v;
		if (smp.seconds > 0 && t - t_start >= smp.seconds)
			stop = 1;
		if (smp.idle > 0 && smp.nactive && t - smp.last >= smp.idle)
			stop = 1;
	}
	return NULL;
}

static double steady_rate(double *over)
{
	int lo = 0, hi = smp.nactive;
	if (hi >= 3) {
		lo = 1;
		hi--;
	}
	double dt = 0;
	uint64_t n = 0;
	for (int i = lo; i < hi; i++) {
		dt += smp.dts[i];
		n += smp.ns[i];
	}
	*over = dt;
	return dt > 0 ? n / dt : 0;
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		dump = 1;
	else
		stop = 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: xskfwd -i IN [-o OUT[,OUT...]] [--rxdrop] [--sg] [-c CPU] [-q QUEUE] [-b BATCH] [-r RING]\n"
			"              [-s SECONDS] [--idle S] [-z (zero-copy)] [-g (generic XDP)]\n"
			"  --sg (or XSKFWD_SG=1): multi-buffer (XDP_USE_SG, xdp.frags), for jumbo frames\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *in = NULL;
	char *outs = NULL;
	int cpu = -1, queue = 0, zerocopy = 0, generic = 0, rxdrop = 0;
	uint32_t batch = 64, ring = 2048;
	static struct option lo[] = {{"rxdrop", no_argument, 0, 'R'}, {"idle", required_argument, 0, 'I'}, {"sg", no_argument, 0, 'S'},
				     {0, 0, 0, 0}};
	const char *env_sg = getenv("XSKFWD_SG");
	sg = env_sg && *env_sg && strcmp(env_sg, "0") != 0;
	int o;
	while ((o = getopt_long(argc, argv, "i:o:c:q:b:r:s:zgh", lo, NULL)) != -1) {
		switch (o) {
		case 'i': in = optarg; break;
		case 'o': outs = strdup(optarg); break;
		case 'c': cpu = atoi(optarg); break;
		case 'q': queue = atoi(optarg); break;
		case 'b': batch = atoi(optarg); break;
		case 'r': ring = atoi(optarg); break;
		case 's': smp.seconds = atof(optarg); break;
		case 'I': smp.idle = atof(optarg); break;
		case 'z': zerocopy = 1; break;
		case 'g': generic = 1; break;
		case 'R': rxdrop = 1; break;
		case 'S': sg = 1; break;
		default: usage();
		}
	}
	if (!in || (!rxdrop && !outs) || batch < 1 || batch > MAX_BATCH || (ring & (ring - 1)))
		usage();
	socks[nsocks++].name = in;
	if (!rxdrop)
		for (char *t = strtok(outs, ","); t; t = strtok(NULL, ",")) {
			if (nsocks == MAX_SOCKS)
				usage();
			socks[nsocks++].name = t;
		}
	for (int s = 0; s < nsocks; s++) {
		socks[s].ifindex = if_nametoindex(socks[s].name);
		if (!socks[s].ifindex) {
			fprintf(stderr, "xskfwd: no device %s\n", socks[s].name);
			return 1;
		}
	}
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) < 0)
			die("sched_setaffinity");
	}
	/* UMEM: the appliance's sizing (2 rings' worth per socket plus batches) */
	nframes = nsocks * ring * 2 + batch * nsocks * 2;
	size_t len = (size_t)nframes * FRAME_SIZE;
	size_t hlen = (len + (2 << 20) - 1) & ~(size_t)((2 << 20) - 1);
	int huge = 1;
	umem = mmap(NULL, hlen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE | MAP_HUGETLB, -1, 0);
	if (umem == MAP_FAILED) {
		huge = 0;
		umem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
		if (umem == MAP_FAILED)
			die("mmap UMEM");
	}
	freestack = calloc(nframes, sizeof(uint64_t));
	for (uint32_t i = 0; i < nframes; i++)
		freestack[nfree++] = (uint64_t)(nframes - 1 - i) * FRAME_SIZE;

	for (int s = 0; s < nsocks; s++) {
		attach_prog(&socks[s], queue, generic);
		open_sock(&socks[s], queue, ring, batch, zerocopy, s ? &socks[0] : NULL);
		map_set(&socks[s], queue);
	}
	/* prime the fill rings */
	for (int s = 0; s < nsocks; s++) {
		struct sock *k = &socks[s];
		uint32_t want = ring < nfree ? ring : nfree, idx;
		uint32_t r = prod_reserve(&k->fill, want, &idx);
		for (uint32_t i = 0; i < r; i++)
			*addr_at(&k->fill, idx + i) = freestack[--nfree];
		prod_submit(&k->fill);
	}
	fprintf(stderr, "xskfwd: %s %s", rxdrop ? "rxdrop on" : "forwarding", in);
	for (int s = 1; s < nsocks; s++)
		fprintf(stderr, "%s%s", s == 1 ? " <-> " : ",", socks[s].name);
	fprintf(stderr, ": %d sockets, %u frames%s, batch %u, ring %u, tx budget %u, cpu %d, bind=%s%s\n", nsocks, nframes,
		huge ? " (hugepages)" : "", batch, ring, socks[0].tx_budget, cpu, zerocopy ? "zero-copy" : "copy",
		sg ? ",multi-buffer" : "");

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGUSR1, on_signal);
	t_start = now_s();
	pthread_t th;
	pthread_create(&th, NULL, sampler_main, NULL);
	long long w0 = runq_wait_ns();
	loop(rxdrop, batch);
	long long waited = runq_wait_ns() - w0;
	pthread_join(th, NULL);

	double over, pps = steady_rate(&over);
	struct xdp_statistics st0;
	socklen_t sl = sizeof(st0);
	memset(&st0, 0, sizeof(st0));
	getsockopt(socks[0].fd, SOL_XDP, XDP_STATISTICS, &st0, &sl);
	uint64_t rx_in = socks[0].c.rx, tx_in = socks[0].c.tx, rx_out = 0, tx_out = 0, drops = 0, kicks = 0;
	uint64_t drop_long = 0, rx_descs = 0, tx_descs = 0;
	for (int s = 0; s < nsocks; s++) {
		drops += socks[s].c.drop_txfull;
		drop_long += socks[s].c.drop_long;
		rx_descs += socks[s].c.rx_descs;
		tx_descs += socks[s].c.tx_descs;
		kicks += socks[s].c.kicks;
		if (s) {
			rx_out += socks[s].c.rx;
			tx_out += socks[s].c.tx;
		}
	}
	printf("ref=xskfwd mode=%s in=%s seconds=%.3f active_s=%.3f packets=%llu rx_in=%llu tx_out=%llu rx_out=%llu tx_in=%llu "
	       "pps=%.0f mpps=%.3f rate_over_s=%.3f drop_tx_full=%llu kicks=%llu in_xsk_rx_dropped=%llu in_xsk_rx_ring_full=%llu "
	       "in_xsk_fill_ring_empty=%llu",
	       rxdrop ? "rxdrop" : "fwd", in, now_s() - t_start, smp.nactive ? smp.last - smp.first : 0.0,
	       (unsigned long long)(rx_in + rx_out), (unsigned long long)rx_in, (unsigned long long)tx_out, (unsigned long long)rx_out, (unsigned long long)tx_in,
	       pps, pps / 1e6, over, (unsigned long long)drops, (unsigned long long)kicks,
	       (unsigned long long)st0.rx_dropped, (unsigned long long)st0.rx_ring_full,
	       (unsigned long long)st0.rx_fill_ring_empty_descs);
	for (int s = 1; s < nsocks; s++)
		printf(" %s_tx=%llu", socks[s].name, (unsigned long long)socks[s].c.tx);
	printf(" runq_wait_ms=%.1f sg=%d", waited / 1e6, sg);
	if (sg)
		printf(" drop_long=%llu rx_descs=%llu tx_descs=%llu", (unsigned long long)drop_long,
		       (unsigned long long)rx_descs, (unsigned long long)tx_descs);
	if (!rxdrop)
		printf(" tx_kick_s=%.3f tx_kick_share=%.3f", kick_s, smp.nactive ? kick_s / (smp.last - smp.first) : 0.0);
	if (rxdrop && rx_in)
		printf(" avg_batch=%.1f busy_ns_per_frame=%.1f", (double)rx_in / polls, busy_s * 1e9 / rx_in);
	printf("\n");
	/* closing the link fds detaches the programs */
	for (int s = 0; s < nsocks; s++) {
		close(socks[s].link_fd);
		close(socks[s].fd);
	}
	return 0;
}
