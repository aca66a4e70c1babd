// Dynamic row scheduling for batches of matrix products (see spec_matmul_jobs).
#include "speculate_kernels.h"
#include <stdatomic.h>

// A chunk is about CHUNK_BYTES of weights, divided by the batch size up to four (whole groups
// of four rows):
// long enough that each thread streams one long run of weights (single-token products with
// 128 KiB chunks took ~20% less time than with 32-row chunks of 27 KiB, session 4), short
// enough that the last chunk of a job does not keep the other threads waiting long.
enum { CHUNK_BYTES = 128 * 1024, MAX_JOBS = 16 };

typedef struct {
    const spec_matmul_job *jobs;
    int count;
    int T;
    int starts[MAX_JOBS + 1];  // first chunk of each job; starts[count] = total chunks
    int chunk_rows[MAX_JOBS];  // rows per chunk of each job
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
        while (chunk >= queue->starts[job + 1]) job++;  // chunks are taken in increasing order
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
            const size_t bytes = queue.jobs[j].row_bytes * (size_t)(T < 1 ? 1 : T > 4 ? 4 : T);
            const int rows = bytes * 4 > CHUNK_BYTES ? 4 : (int)(CHUNK_BYTES / bytes) / 4 * 4;
            queue.chunk_rows[j] = rows;
            queue.starts[j + 1] = queue.starts[j] + (queue.jobs[j].rows + rows - 1) / rows;
        }
        atomic_init(&queue.next, 0);
        spec_pool_run(run_chunks, &queue);
    }
}
