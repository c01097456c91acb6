/* cffi declarations of csrc/shmring.h (cffi's C dialect: no includes, no _Atomic). */
typedef struct shmring shmring_t;

struct shmring_params {
	uint32_t kind;
	uint32_t hugepages;
	uint64_t capacity;
	uint64_t slot_size;
	uint32_t mode;
	uint32_t ndim;
	uint64_t shape[8];
	const char *dtype;
};

struct shmring_info {
	uint32_t kind;
	uint32_t ndim;
	uint64_t capacity;
	uint64_t slot_size;
	uint64_t slot_stride;
	uint64_t slots_offset;
	uint64_t size_bytes;
	uint64_t page_size;
	uint64_t shape[8];
	char dtype[192];
	char backing[16];
	uint64_t length;
	uint32_t shut_down;
	uint32_t is_array;
	int32_t producer_pid;
	int32_t consumer_pid;
	int32_t pids[32];
};

int shmring_create(const char *name, const struct shmring_params *p, shmring_t **out);
int shmring_attach(const char *name, int any_owner, shmring_t **out);
int shmring_unlink(const char *name);
void shmring_close(shmring_t *r);
void shmring_free(shmring_t *r);
void *shmring_base(shmring_t *r);
int shmring_info(shmring_t *r, struct shmring_info *out);
uint64_t shmring_length(shmring_t *r);
int shmring_shutdown(shmring_t *r);

int shmring_try_put(shmring_t *r, const char *src, uint64_t len);
int64_t shmring_try_put_many(shmring_t *r, const void *src, const uint64_t *lens, uint64_t n);
int64_t shmring_try_reserve(shmring_t *r);
int shmring_commit(shmring_t *r, uint64_t len);
int shmring_abandon(shmring_t *r);

int64_t shmring_try_get_staged(shmring_t *r);
void *shmring_stage(shmring_t *r);
int64_t shmring_try_get_many(shmring_t *r, void *dst, uint64_t *lens, uint64_t max);
int64_t shmring_try_front(shmring_t *r, uint64_t *len);
int shmring_release(shmring_t *r);

int shmring_wait_writable(shmring_t *r, int64_t timeout_ns);
int shmring_wait_readable(shmring_t *r, int64_t timeout_ns);

void shmring_set_spin(shmring_t *r, int64_t spin_ns);

const char *shmring_strerror(int err);

/* stamped by _build.py, checked at import */
static const char *const SHMRING_BUILD_VERSION;
