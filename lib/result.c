/* libfut — results (fut_result_t): the exported constructors behind the
 * inline macros of <fut/future.h>, and fut__dispose. */
#include "internal.h"

/* ---- results ------------------------------------------------------------
 * The header makes these inline (macros over fut__result_*); the exported
 * functions remain for callers that take their address or bind by name. */
#undef fut_ok
#undef fut_ok_owned
#undef fut_ok_i64
#undef fut_fail
#undef fut_forward
#undef fut_adopt

fut_result_t fut_ok(void *value)
{
    fut_result_t r = {.kind_ = RK_OK, .u_.ptr = value};
    return r;
}

fut_result_t fut_ok_owned(void *value, void (*dtor)(void *))
{
    fut_result_t r = {
        .kind_ = dtor ? RK_OWNED : RK_OK, .u_.ptr = value, .dtor_ = dtor};
    return r;
}

fut_result_t fut_ok_i64(int64_t v)
{
    fut_result_t r = {.kind_ = RK_I64, .u_.i64 = v};
    return r;
}

fut_result_t fut_fail(int err)
{
    fut_result_t r = {.kind_ = RK_FAIL, .err_ = err < 0 ? err : FUT_EINVAL};
    return r;
}

fut_result_t fut_forward(fut_t *src)
{
    fut_result_t r = {.kind_ = RK_FORWARD, .u_.fut = src};
    return r;
}

fut_result_t fut_adopt(fut_t *other)
{
    fut_result_t r = {.kind_ = RK_ADOPT, .u_.fut = other};
    return r;
}

void fut__dispose(fut_result_t r)
{
    if (r.kind_ == RK_OWNED && r.dtor_)
        r.dtor_(r.u_.ptr);
    else if (r.kind_ == RK_ADOPT)
        fut_release(r.u_.fut);
}
