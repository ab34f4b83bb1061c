/* The pure planning logic of work assignment (work.c): which live member
 * runs which item. No I/O: unit-tested in tests/unit/test_work_plan.c.
 *
 * The plan is sticky and balanced:
 *  - balance: member i with weight w_i of total W gets floor(N w_i / W) or
 *    that plus one item (N items), so |count_i - N w_i / W| < 1: the load per
 *    unit of weight is off the ideal by less than one item per unit;
 *  - stickiness: among the plans that meet the bound, it keeps the largest
 *    possible number of items where they were (the extra "+1" slots go first
 *    to members that already hold more than their floor), so a join moves
 *    only about N/n items to the newcomer and a leave moves only the
 *    leaver's items;
 *  - determinism: the result depends only on the input (items and members
 *    sorted by name, ties broken by name), so any leader computes the same
 *    plan from the same view. */
#ifndef ZKC_WORK_PLAN_H
#define ZKC_WORK_PLAN_H

#include <stddef.h>
#include <stdint.h>

/* Largest weight a member may carry; larger ones are clamped by the caller. */
#define ZKC__WORK_MAX_WEIGHT 1000000
/* Longest item name (as ZKC_WORK_MAX_ITEM in zkcoord/work.h). */
#define ZKC__WORK_MAX_ITEM 200

typedef struct zkc__wp_member {
    const char *id;
    int64_t weight; /* 1..ZKC__WORK_MAX_WEIGHT */
} zkc__wp_member;

/* One line of a previous plan: `item` was given to `member` (NULL = to
 * nobody). Lines naming items or members not in the input are ignored. */
typedef struct zkc__wp_line {
    const char *item;
    const char *member;
} zkc__wp_line;

/* Plan `n_items` items (strictly increasing by strcmp) over `n_members`
 * members (ids strictly increasing by strcmp, weights in range), given the
 * previous plan `prev` (n_prev lines, any order; duplicates: the first
 * wins). On 0, owner[i] is the index in `members` of item i's owner, or -1
 * when there are no members. Errors: ZKC_EINVAL (unsorted or duplicate
 * input, bad weight, negative counts), ZKC_ENOMEM. */
int zkc__work_plan(const char *const *items, int n_items, const zkc__wp_member *members,
                   int n_members, const zkc__wp_line *prev, int n_prev, int *owner);

/* Member weight from the member's metadata (a JSON object text, may be
 * NULL): its "weight" when it is an integer in 1..ZKC__WORK_MAX_WEIGHT
 * (returns 0), else 1 with a one-line reason in `why` (returns 1: the
 * caller warns). A missing "weight" is 1 without a reason (returns 0). */
int zkc__work_weight(const char *metadata, int64_t *weight, char *why, size_t why_len);

/* 0 when `item` is a usable item name (see zkc_work_item_name_check). */
int zkc__work_item_ok(const char *item);

/* A plan as read from (or written to) the plan node. */
typedef struct zkc__wplan {
    int64_t version;
    char *leader;        /* may be NULL */
    zkc__wp_line *lines; /* sorted by item, unique; strings owned */
    int n;
} zkc__wplan;

void zkc__wplan_clear(zkc__wplan *p);
/* Index of `item` in p->lines, -1 when absent. */
int zkc__wplan_find(const zkc__wplan *p, const char *item);
/* Decode untrusted plan node data (capped by the caller) into *p (cleared
 * first). 0, ZKC_EBADDATA (reason in `why`: not JSON, not an object, no
 * positive integer "version", "assign" not an object of member-id strings,
 * a bad item name, an id longer than 255 bytes), ZKC_ENOMEM. */
int zkc__wplan_decode(const char *data, int len, zkc__wplan *p, char *why, size_t why_len);
/* Encode a plan as compact JSON (keys sorted): a new string in *out.
 * 0 or ZKC_ENOMEM. */
int zkc__wplan_encode(const zkc__wplan *p, char **out, size_t *len);

#endif
