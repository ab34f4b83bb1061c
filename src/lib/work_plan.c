/* Work assignment planning: see work_plan.h. */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "work_plan.h"
#include "zkcoord/zkcoord.h"

struct slot {
    int idx;
    int64_t floor_; /* floor(N w / W) */
    int64_t frac;   /* N w mod W: > 0 when the member may take one more */
    int64_t held;   /* items of the previous plan it holds that still exist */
    int64_t quota;
};

static int find(const char *const *names, size_t stride, int n, const char *key)
{
    int lo = 0, hi = n - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const char *name = *(const char *const *)((const char *)names + (size_t)mid * stride);
        int c = strcmp(name, key);

        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Who gets the +1 slots: first the members that would keep one more item
 * with it (they hold more than their floor), then the larger remainders,
 * then the member order. A total order, so the plan is deterministic. */
static int slot_cmp(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    int xk = x->held > x->floor_, yk = y->held > y->floor_;

    if (xk != yk)
        return yk - xk;
    if (x->frac != y->frac)
        return x->frac > y->frac ? -1 : 1;
    return x->idx - y->idx;
}

int zkc__work_plan(const char *const *items, int n_items, const zkc__wp_member *members,
                   int n_members, const zkc__wp_line *prev, int n_prev, int *owner)
{
    struct slot *sl = NULL, *order = NULL;
    int64_t *kept = NULL;
    int64_t total = 0, rem = 0;
    int i, m, rc = ZKC_ENOMEM;

    if (n_items < 0 || n_members < 0 || n_prev < 0 || (n_items && (!items || !owner)) ||
        (n_members && !members) || (n_prev && !prev))
        return ZKC_EINVAL;
    for (i = 0; i < n_items; i++)
        if (!items[i] || (i && strcmp(items[i - 1], items[i]) >= 0))
            return ZKC_EINVAL;
    for (m = 0; m < n_members; m++) {
        if (!members[m].id || members[m].weight < 1 || members[m].weight > ZKC__WORK_MAX_WEIGHT ||
            (m && strcmp(members[m - 1].id, members[m].id) >= 0))
            return ZKC_EINVAL;
        total += members[m].weight;
    }
    if (n_members == 0) {
        for (i = 0; i < n_items; i++)
            owner[i] = -1;
        return 0;
    }
    sl = calloc((size_t)n_members, sizeof(*sl));
    order = calloc((size_t)n_members, sizeof(*order));
    kept = calloc((size_t)n_members, sizeof(*kept));
    if (!sl || !order || !kept)
        goto out;

    /* The previous owner of each item, when both still exist (owner[] holds
     * it for now). */
    for (i = 0; i < n_items; i++)
        owner[i] = -2; /* not seen in prev yet */
    for (i = 0; i < n_prev; i++) {
        int it, mb;

        if (!prev[i].item)
            continue;
        it = find(items, sizeof(items[0]), n_items, prev[i].item);
        if (it < 0 || owner[it] != -2)
            continue;
        mb = prev[i].member ? find(&members[0].id, sizeof(members[0]), n_members, prev[i].member)
                            : -1;
        owner[it] = mb;
    }
    for (m = 0; m < n_members; m++) {
        int64_t share = (int64_t)n_items * members[m].weight;

        sl[m].idx = m;
        sl[m].floor_ = share / total;
        sl[m].frac = share % total;
        rem += sl[m].floor_;
    }
    rem = n_items - rem; /* +1 slots to hand out: < n_members */
    for (i = 0; i < n_items; i++)
        if (owner[i] >= 0)
            sl[owner[i]].held++;
    memcpy(order, sl, (size_t)n_members * sizeof(*sl));
    qsort(order, (size_t)n_members, sizeof(*order), slot_cmp);
    for (m = 0; m < n_members; m++)
        sl[m].quota = sl[m].floor_;
    /* Only members with a remainder may take a +1 (else they would be a
     * whole item above their share); there are at least `rem` of them. */
    for (m = 0; m < n_members && rem > 0; m++)
        if (order[m].frac > 0) {
            sl[order[m].idx].quota++;
            rem--;
        }

    /* Keep what fits the quota (the first items by name), free the rest. */
    for (i = 0; i < n_items; i++) {
        int o = owner[i];

        if (o >= 0 && kept[o] < sl[o].quota)
            kept[o]++;
        else
            owner[i] = -1;
    }
    /* Free items in name order to members short of their quota, in member
     * order. */
    m = 0;
    for (i = 0; i < n_items; i++) {
        if (owner[i] >= 0)
            continue;
        while (m < n_members && kept[m] >= sl[m].quota)
            m++;
        if (m == n_members) { /* cannot happen: quotas sum to n_items */
            rc = ZKC_EINVAL;
            goto out;
        }
        owner[i] = m;
        kept[m]++;
    }
    rc = 0;
out:
    free(kept);
    free(order);
    free(sl);
    return rc;
}

int zkc__work_weight(const char *metadata, int64_t *weight, char *why, size_t why_len)
{
    json_error_t err;
    json_t *doc, *w;
    int rc = 0;

    *weight = 1;
    if (why && why_len)
        why[0] = '\0';
    if (!metadata || !*metadata)
        return 0;
    doc = json_loads(metadata, JSON_REJECT_DUPLICATES, &err);
    if (!doc || !json_is_object(doc)) {
        /* The payload decoder already reported malformed metadata. */
        json_decref(doc);
        return 0;
    }
    w = json_object_get(doc, "weight");
    if (w) {
        if (json_is_integer(w) && json_integer_value(w) >= 1 &&
            json_integer_value(w) <= ZKC__WORK_MAX_WEIGHT) {
            *weight = json_integer_value(w);
        } else {
            rc = 1;
            if (why && why_len)
                snprintf(why, why_len, "weight is not an integer in 1..%d; using 1",
                         ZKC__WORK_MAX_WEIGHT);
        }
    }
    json_decref(doc);
    return rc;
}

/* ------------------------------------------------------------ plan codec */

int zkc__work_item_ok(const char *item)
{
    size_t n;
    const unsigned char *p;

    if (!item)
        return ZKC_EINVAL;
    n = strlen(item);
    if (n == 0 || n > ZKC__WORK_MAX_ITEM || strcmp(item, ".") == 0 || strcmp(item, "..") == 0)
        return ZKC_EINVAL;
    for (p = (const unsigned char *)item; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '/')
            return ZKC_EINVAL;
    return 0;
}

void zkc__wplan_clear(zkc__wplan *p)
{
    int i;

    for (i = 0; i < p->n; i++) {
        free((char *)p->lines[i].item);
        free((char *)p->lines[i].member);
    }
    free(p->lines);
    free(p->leader);
    memset(p, 0, sizeof(*p));
}

int zkc__wplan_find(const zkc__wplan *p, const char *item)
{
    if (!p->n)
        return -1;
    return find(&p->lines[0].item, sizeof(p->lines[0]), p->n, item);
}

static int line_cmp(const void *a, const void *b)
{
    return strcmp(((const zkc__wp_line *)a)->item, ((const zkc__wp_line *)b)->item);
}

#define BAD(...)                                                                                   \
    do {                                                                                           \
        if (why && why_len)                                                                        \
            snprintf(why, why_len, __VA_ARGS__);                                                   \
        rc = ZKC_EBADDATA;                                                                         \
        goto out;                                                                                  \
    } while (0)

int zkc__wplan_decode(const char *data, int len, zkc__wplan *p, char *why, size_t why_len)
{
    json_error_t err;
    json_t *doc = NULL, *ver, *assign, *leader, *val;
    const char *key;
    int rc = 0;
    size_t cap;

    zkc__wplan_clear(p);
    if (why && why_len)
        why[0] = '\0';
    if (!data || len <= 0)
        BAD("empty");
    doc = json_loadb(data, (size_t)len, JSON_REJECT_DUPLICATES, &err);
    if (!doc)
        BAD("not JSON (line %d column %d: %s)", err.line, err.column, err.text);
    if (!json_is_object(doc))
        BAD("not a JSON object");
    ver = json_object_get(doc, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) < 1)
        BAD("no positive integer \"version\"");
    assign = json_object_get(doc, "assign");
    if (!json_is_object(assign))
        BAD("\"assign\" is not an object");
    leader = json_object_get(doc, "leader");
    if (leader && !json_is_string(leader) && !json_is_null(leader))
        BAD("\"leader\" is not a string");
    if (json_is_string(leader) && json_string_length(leader) > 255)
        BAD("\"leader\" is longer than 255 bytes");
    cap = json_object_size(assign);
    p->version = json_integer_value(ver);
    if (json_is_string(leader) && !(p->leader = strdup(json_string_value(leader))))
        goto oom;
    if (cap && !(p->lines = calloc(cap, sizeof(*p->lines))))
        goto oom;
    json_object_foreach(assign, key, val)
    {
        if (zkc__work_item_ok(key) != 0)
            BAD("bad item name in \"assign\"");
        if (!json_is_string(val) || json_string_length(val) == 0 || json_string_length(val) > 255 ||
            strlen(json_string_value(val)) != json_string_length(val))
            BAD("member of item '%s' is not an id string", key);
        p->lines[p->n].item = strdup(key);
        p->lines[p->n].member = strdup(json_string_value(val));
        p->n++;
        if (!p->lines[p->n - 1].item || !p->lines[p->n - 1].member)
            goto oom;
    }
    if (p->n > 1)
        qsort(p->lines, (size_t)p->n, sizeof(*p->lines), line_cmp);
out:
    json_decref(doc);
    if (rc)
        zkc__wplan_clear(p);
    return rc;
oom:
    rc = ZKC_ENOMEM;
    goto out;
}

int zkc__wplan_encode(const zkc__wplan *p, char **out, size_t *len)
{
    json_t *doc = json_object(), *assign = json_object();
    char *text;
    int i, bad = !doc || !assign;

    if (!bad) {
        bad |= json_object_set_new(doc, "version", json_integer(p->version));
        bad |= json_object_set_new(doc, "leader", p->leader ? json_string(p->leader) : json_null());
        for (i = 0; i < p->n && !bad; i++)
            if (p->lines[i].member)
                bad |=
                    json_object_set_new(assign, p->lines[i].item, json_string(p->lines[i].member));
        bad |= json_object_set(doc, "assign", assign);
    }
    json_decref(assign);
    if (bad) {
        json_decref(doc);
        return ZKC_ENOMEM;
    }
    text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (!text)
        return ZKC_ENOMEM;
    *out = text;
    *len = strlen(text);
    return 0;
}
