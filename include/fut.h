/* libfut — futures and promises for C, on pluggable executors.
 * This umbrella header is the only include an application needs. */
#ifndef FUT_H
#define FUT_H

#include "fut/common.h"
#include "fut/future.h"
#include "fut/executor.h"
#include "fut/executor_kit.h"
#include "fut/pool.h"
#include "fut/loop.h"
#include "fut/scope.h"
#include "fut/fiber.h"
#include "fut/io.h"

#endif
