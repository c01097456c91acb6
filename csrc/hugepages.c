/* SPDX-License-Identifier: MIT */
/*
 * Where huge pages can come from on this host, and how to tell what we got.
 *
 *   hugetlbfs      a file in a hugetlbfs mount: named, shareable by path,
 *                  from the reserved pool (vm.nr_hugepages).  There is no
 *                  canonical mount point (systemd: /dev/hugepages), so the
 *                  mounts are read from /proc/mounts.
 *   memfd-hugetlb  memfd_create(MFD_HUGETLB): the same pool, no mount needed,
 *                  but anonymous.  A name stub in /dev/shm says which process
 *                  and descriptor hold it; others open /proc/<pid>/fd/<n>.
 *   thp            a /dev/shm file with MADV_HUGEPAGE: only when the tmpfs
 *                  mount (huge=) or shmem_enabled lets the kernel do it, and
 *                  only as far as the kernel finds free 2 MiB blocks, so what
 *                  the mapping got is read back from /proc/self/smaps.
 *   shm            4 KiB pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "ring.h"

#define HUGETLBFS_MAGIC 0x958458f6
#define TMPFS_MAGIC     0x01021994
#define THP_SYSFS       "/sys/kernel/mm/transparent_hugepage/"

const char *backing_name(uint32_t backing)
{
	static const char *const names[] = {
		[BACKING_SHM] = "shm", [BACKING_THP] = "thp",
		[BACKING_HUGETLBFS] = "hugetlbfs", [BACKING_MEMFD] = "memfd-hugetlb",
	};

	return backing < sizeof(names) / sizeof(names[0]) ? names[backing] : "shm";
}

/* The huge page size of a hugetlbfs mount, or 0 if dir is not on one. */
uint64_t hugetlbfs_page_size(const char *dir)
{
	struct statfs s;

	if (statfs(dir, &s) < 0 || s.f_type != HUGETLBFS_MAGIC)
		return 0;
	return (uint64_t)s.f_bsize;
}

static void add_dir(struct search_dirs *d, const char *dir)
{
	if (d->n >= SEARCH_DIRS_MAX || strlen(dir) >= sizeof(d->dir[0]))
		return;
	for (int i = 0; i < d->n; i++)
		if (!strcmp(d->dir[i], dir))
			return;
	snprintf(d->dir[d->n++], sizeof(d->dir[0]), "%s", dir);
}

int search_dirs(const char *given, int purpose, struct search_dirs *d)
{
	const char *env = getenv("SHMRING_HUGETLBFS");
	struct mntent ent;
	char buf[4096];
	FILE *f;

	d->n = 0;
	if (purpose == SEARCH_FIND)
		add_dir(d, SHM_DIR);
	if (given && *given) {
		if (!hugetlbfs_page_size(given))
			return -EMEDIUMTYPE;
		add_dir(d, given);
	}
	if (purpose == SEARCH_CREATE && given)
		return d->n;   /* create goes where it was told; "" asks for no mount at all */
	/* A misconfigured variable is skipped here: "require" names it in its error. */
	if (env && *env && hugetlbfs_page_size(env))
		add_dir(d, env);
	if (!(f = setmntent("/proc/mounts", "re")))
		return d->n;
	while (getmntent_r(f, &ent, buf, sizeof(buf)))
		if (!strcmp(ent.mnt_type, "hugetlbfs") && hugetlbfs_page_size(ent.mnt_dir))
			add_dir(d, ent.mnt_dir);
	endmntent(f);
	return d->n;
}

/* The bracketed word of a sysfs choice file ("always [never] deny"), or "". */
static void sysfs_choice(const char *path, char *out, size_t cap)
{
	char buf[256], *open_, *close_;
	FILE *f = fopen(path, "re");

	*out = 0;
	if (!f)
		return;
	if (fgets(buf, sizeof(buf), f) && (open_ = strchr(buf, '[')) && (close_ = strchr(open_, ']'))) {
		*close_ = 0;
		snprintf(out, cap, "%s", open_ + 1);
	}
	fclose(f);
}

int shmring_thp_allowed(void)
{
	char choice[32], huge[32] = "never", buf[4096];
	struct mntent ent;
	const char *opt;
	FILE *f;

	sysfs_choice(THP_SYSFS "shmem_enabled", choice, sizeof(choice));
	if (!strcmp(choice, "deny"))
		return 0;
	if (!strcmp(choice, "force"))
		return 1;
	/* Otherwise the tmpfs mount decides; the last /dev/shm line is the one on top. */
	if (!(f = setmntent("/proc/mounts", "re")))
		return 0;
	while (getmntent_r(f, &ent, buf, sizeof(buf))) {
		if (strcmp(ent.mnt_dir, SHM_DIR))
			continue;
		snprintf(huge, sizeof(huge), "never");
		if ((opt = hasmntopt(&ent, "huge")) && opt[4] == '=')
			sscanf(opt + 5, "%31[^,]", huge);
	}
	endmntent(f);
	return !strcmp(huge, "always") || !strcmp(huge, "within_size") || !strcmp(huge, "advise");
}

uint64_t thp_page_size(void)
{
	unsigned long long size = 0;
	FILE *f = fopen(THP_SYSFS "hpage_pmd_size", "re");

	if (f) {
		if (fscanf(f, "%llu", &size) != 1)
			size = 0;
		fclose(f);
	}
	return size ? size : 2u << 20;
}

int thp_mapped(const void *addr)
{
	char line[512];
	unsigned long start, end, kb;
	int inside = 0, found = 0;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			if (inside)
				break;
			inside = start == (unsigned long)addr;
		} else if (inside && sscanf(line, "ShmemPmdMapped: %lu kB", &kb) == 1) {
			found = kb > 0;
			break;
		}
	}
	fclose(f);
	return found;
}

uint32_t fd_backing(int fd, char *link, size_t cap, uint64_t *page_size)
{
	char self[64];
	struct statfs s;
	ssize_t n;

	*page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	n = readlink(self, link, cap - 1);
	link[n > 0 ? n : 0] = 0;
	if (fstatfs(fd, &s) < 0)
		return BACKING_NONE;
	if (s.f_type == HUGETLBFS_MAGIC) {
		*page_size = (uint64_t)s.f_bsize;
		return strncmp(link, "/memfd:", 7) ? BACKING_HUGETLBFS : BACKING_MEMFD;
	}
	return s.f_type == TMPFS_MAGIC ? BACKING_SHM : BACKING_NONE;
}

/* What /proc/<pid>/fd/<n> of a memfd ring reads as: "/memfd:shmring.N (deleted)". */
static void memfd_link(const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "/memfd:" PREFIX "%s (deleted)", name);
}

int memfd_create_named(const char *name)
{
	char label[NAME_MAX_LEN + 16];

	snprintf(label, sizeof(label), PREFIX "%s", name);
	return memfd_create(label, MFD_HUGETLB | MFD_CLOEXEC);
}

int stub_publish(const char *path, int memfd, uint64_t size, uint32_t mode)
{
	struct shmring_stub stub = {
		.magic = SHMRING_STUB_MAGIC, .creator = peer_self_token(),
		.fd = memfd, .backing = BACKING_MEMFD, .size = size,
	};
	char self[64];
	int fd, rc = 0;

	/* Written unnamed, then linked: nobody ever sees half a stub, and the
	 * link fails with EEXIST as O_EXCL would. */
	fd = open(SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if (fchmod(fd, mode) < 0 || pwrite(fd, &stub, sizeof(stub), 0) != (ssize_t)sizeof(stub) ||
	    linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int stub_follow(int stubfd, const char *name)
{
	struct shmring_stub stub;
	char proc[64], want[NAME_MAX_LEN + 64], got[NAME_MAX_LEN + 64];
	uint64_t page_size;
	int fd;

	if (pread(stubfd, &stub, sizeof(stub), 0) != (ssize_t)sizeof(stub) ||
	    stub.magic != SHMRING_STUB_MAGIC)
		return -EPROTO;
	if (!peer_alive(stub.creator))
		return -EOWNERDEAD;
	snprintf(proc, sizeof(proc), "/proc/%d/fd/%d", (int)peer_pid(stub.creator), (int)stub.fd);
	fd = open(proc, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -EOWNERDEAD : -errno;
	/* Checked after the open, on what we hold: the creator may have exited
	 * and its pid, or its descriptor number, been reused meanwhile. */
	memfd_link(name, want, sizeof(want));
	if (fd_backing(fd, got, sizeof(got), &page_size) != BACKING_MEMFD || strcmp(got, want) ||
	    !peer_alive(stub.creator)) {
		close(fd);
		return -EOWNERDEAD;
	}
	return fd;
}

int stub_is(int fd, uint64_t file_size)
{
	uint64_t magic;

	return file_size == sizeof(struct shmring_stub) &&
	       pread(fd, &magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
	       magic == SHMRING_STUB_MAGIC;
}
