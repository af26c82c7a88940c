/* The outside program of check:mpi-install (SConstruct): built against an
 * installed libfut-mpi with `pkg-config --cflags --libs fut-mpi`, run on 2
 * ranks.  Rank 0 calls "square" on rank 1 and checks the answer. */
#include <fut/mpi.h>

#include <stdio.h>

static fut_result_t square(const void *arg, size_t len, void *ud)
{
    (void)ud;
    return len == sizeof(int64_t) ? fut_ok_i64(*(const int64_t *)arg *
                                               *(const int64_t *)arg)
                                  : fut_fail(FUT_EINVAL);
}

int main(int argc, char **argv)
{
    int level, ok = 1;
    fut_mpi_t *m;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
    if (fut_mpi_create(&m, MPI_COMM_WORLD, NULL) != 0 ||
        fut_mpi_register(m, "square", square, NULL) != 0)
        MPI_Abort(MPI_COMM_WORLD, 1);
    if (fut_mpi_rank(m) == 0) {
        int64_t x = 7;
        fut_t *f = fut_mpi_call(m, fut_mpi_size(m) - 1, "square", &x, sizeof x);
        ok = fut_mpi_wait(m, f, -1) == 0 && fut_value_i64(f) == 49;
        printf("square(7) on rank %d: %lld\n", fut_mpi_size(m) - 1,
               (long long)fut_value_i64(f));
        fut_release(f);
    } else {
        ok = fut_mpi_serve(m) == 0;
    }
    ok = fut_mpi_destroy(m) == 0 && ok;
    MPI_Finalize();
    return ok ? 0 : 1;
}
