// Dynamic row scheduling for batches of matrix products (see spec_matmul_jobs).
#include "speculate_kernels.h"
#include <stdatomic.h>

// Products of one to four tokens (decoding, drafting, the small trees verification mostly
// sees) take chunks of about SMALL_BATCH_CHUNK_BYTES of weights, so each thread streams one long
// run of memory: ~15% less kernel time than 32-row chunks (27 KiB for the 1.5B model's attention
// rows) at one to four tokens (Zen 3). Larger batches keep 32-row chunks, which measured as
// fast or faster there (compute, not streaming, bounds them).
enum { SMALL_BATCH_CHUNK_BYTES = 128 * 1024, SMALL_BATCH = 4, BATCH_CHUNK_ROWS = 32, MAX_JOBS = 16 };

typedef struct {
    const spec_matmul_job *jobs;
    int count;
    int T;
    int starts[MAX_JOBS + 1]; // first chunk of each job; starts[count] = total chunks
    int chunk_rows[MAX_JOBS]; // rows per chunk of each job
    atomic_int next;
} chunk_queue;

static void run_chunks(void *context, int index, int threads) {
    (void)index;
    (void)threads;
    chunk_queue *queue = context;
    const int total = queue->starts[queue->count];
    int job = 0;
    for (;;) {
        const int chunk = atomic_fetch_add_explicit(&queue->next, 1, memory_order_relaxed);
        if (chunk >= total) return;
        while (chunk >= queue->starts[job + 1]) job++; // chunks are taken in increasing order
        const spec_matmul_job *j = &queue->jobs[job];
        const int rows = queue->chunk_rows[job];
        const int r0 = (chunk - queue->starts[job]) * rows;
        const int r1 = r0 + rows < j->rows ? r0 + rows : j->rows;
        spec_matmul(j->type, j->n, j->w, j->row_bytes, r0, r1, j->act, j->act_stride, queue->T, j->y, j->y_stride);
    }
}

void spec_matmul_jobs(const spec_matmul_job *jobs, int count, int T) {
    for (int first = 0; first < count; first += MAX_JOBS) {
        chunk_queue queue;
        queue.jobs = jobs + first;
        queue.count = count - first < MAX_JOBS ? count - first : MAX_JOBS;
        queue.T = T;
        queue.starts[0] = 0;
        for (int j = 0; j < queue.count; j++) {
            const size_t row_bytes = queue.jobs[j].row_bytes;
            // Multiples of 8 rows: packed matrices (repack.c) interleave groups of 8, and a
            // chunk boundary inside a group would compute that group twice.
            const int rows = T > SMALL_BATCH ? BATCH_CHUNK_ROWS
                             : row_bytes * 8 > SMALL_BATCH_CHUNK_BYTES
                                 ? 8
                                 : (int)(SMALL_BATCH_CHUNK_BYTES / row_bytes) / 8 * 8;
            queue.chunk_rows[j] = rows;
            queue.starts[j + 1] = queue.starts[j] + (queue.jobs[j].rows + rows - 1) / rows;
        }
        atomic_init(&queue.next, 0);
        spec_pool_run(run_chunks, &queue);
    }
}
