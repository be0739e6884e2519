/**
 * @file redkit.h
 * @brief Umbrella header: distributed cache, lock, semaphore and memoizing lock on Redis.
 */
#ifndef REDKIT_H
#define REDKIT_H

#include "redkit/cache.h"
#include "redkit/common.h"
#include "redkit/config.h"
#include "redkit/error.h"
#include "redkit/lock.h"
#include "redkit/log.h"
#include "redkit/memolock.h"
#include "redkit/semaphore.h"
#include "redkit/stats.h"

#endif
