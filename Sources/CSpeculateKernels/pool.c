// A small thread pool for the forward pass: the caller and (threads - 1) workers each run one
// slice of a job. Workers spin briefly before sleeping, since jobs arrive every few hundred
// microseconds during decoding and a sleep/wake round trip would cost more than the work.
#include "speculate_kernels.h"
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SPIN_PAUSE() _mm_pause()
#else
#define SPIN_PAUSE() ((void)0)
#endif

enum { MAX_THREADS = 64, SPIN_ROUNDS = 20000 };

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t run_lock = PTHREAD_MUTEX_INITIALIZER; // one job at a time, whoever calls
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static pthread_t workers[MAX_THREADS];
static int thread_count = 1; // including the caller
static int started_workers = 0;
static atomic_uint generation; // bumped for each job
static atomic_int pending;     // workers still running the current job
static atomic_int stopping;
static spec_task_fn job_fn;
static void *job_ctx;

static unsigned start_generation[MAX_THREADS];

static void *worker_main(void *arg) {
    const int index = (int)(intptr_t)arg;
    // The generation when this worker was created: a job may be posted before it first runs.
    unsigned seen = start_generation[index];
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&generation, memory_order_acquire) == seen && !atomic_load(&stopping)) {
            if (++spins < SPIN_ROUNDS) {
                SPIN_PAUSE();
            } else {
                pthread_mutex_lock(&lock);
                while (atomic_load(&generation) == seen && !atomic_load(&stopping)) pthread_cond_wait(&wake, &lock);
                pthread_mutex_unlock(&lock);
            }
        }
        if (atomic_load(&stopping)) return NULL;
        seen = atomic_load(&generation);
        job_fn(job_ctx, index, thread_count);
        atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel);
    }
}

static void stop_workers(void) {
    if (started_workers == 0) return;
    pthread_mutex_lock(&lock);
    atomic_store(&stopping, 1);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < started_workers; i++) pthread_join(workers[i], NULL);
    started_workers = 0;
    atomic_store(&stopping, 0);
}

void spec_pool_set_threads(int threads) {
    pthread_mutex_lock(&run_lock);
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads == thread_count && started_workers == threads - 1) {
        pthread_mutex_unlock(&run_lock);
        return;
    }
    stop_workers();
    thread_count = threads;
    for (int i = 1; i < threads; i++) {
        start_generation[i] = atomic_load(&generation);
        if (pthread_create(&workers[started_workers], NULL, worker_main, (void *)(intptr_t)i) != 0) break;
        started_workers++;
    }
    thread_count = started_workers + 1;
    pthread_mutex_unlock(&run_lock);
}

int spec_pool_threads(void) {
    return thread_count;
}

void spec_pool_run(spec_task_fn fn, void *ctx) {
    pthread_mutex_lock(&run_lock);
    if (thread_count == 1) {
        fn(ctx, 0, 1);
        pthread_mutex_unlock(&run_lock);
        return;
    }
    job_fn = fn;
    job_ctx = ctx;
    atomic_store(&pending, thread_count - 1);
    pthread_mutex_lock(&lock);
    atomic_fetch_add_explicit(&generation, 1, memory_order_release);
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    fn(ctx, 0, thread_count);
    while (atomic_load_explicit(&pending, memory_order_acquire) > 0) SPIN_PAUSE();
    pthread_mutex_unlock(&run_lock);
}
