/* Unit tests of work assignment planning (src/lib/work_plan.c), no server:
 * fixed cases, then property tests over seeded random sequences of joins,
 * leaves, weight changes and item adds/removes. Each step checks that every
 * item goes to a live member, the balance bound, that the number of moved
 * items equals the lower bound over all plans meeting the bound, and that
 * the plan depends only on its input. The seed is printed; set
 * ZKC_WORK_SEED to replay one. */
#include <CUnit/Basic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "work_plan.h"
#include "zkcoord/zkcoord.h"

#define MAX_ITEMS   200
#define MAX_MEMBERS 24

static unsigned seed;

static uint64_t rng_state;
static uint64_t rnd(void)
{
    /* xorshift64*: reproducible across libcs, unlike rand(). */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
static int rnd_below(int n)
{
    return n > 0 ? (int)(rnd() % (uint64_t)n) : 0;
}

struct world {
    char item_names[MAX_ITEMS][16];
    int item_alive[MAX_ITEMS];
    char member_names[MAX_MEMBERS][16];
    int member_alive[MAX_MEMBERS];
    int64_t weight[MAX_MEMBERS];
    int prev_owner[MAX_ITEMS]; /* index into member_names, -1 none */
};

struct input {
    const char *items[MAX_ITEMS];
    int item_ix[MAX_ITEMS]; /* world index of items[i] */
    int n_items;
    zkc__wp_member members[MAX_MEMBERS];
    int member_ix[MAX_MEMBERS];
    int n_members;
    zkc__wp_line prev[MAX_ITEMS];
    int n_prev;
};

/* World names are made so that index order is name order. */
static void build(const struct world *w, struct input *in)
{
    int i;

    memset(in, 0, sizeof(*in));
    for (i = 0; i < MAX_ITEMS; i++)
        if (w->item_alive[i]) {
            in->item_ix[in->n_items] = i;
            in->items[in->n_items++] = w->item_names[i];
        }
    for (i = 0; i < MAX_MEMBERS; i++)
        if (w->member_alive[i]) {
            in->member_ix[in->n_members] = i;
            in->members[in->n_members].id = w->member_names[i];
            in->members[in->n_members++].weight = w->weight[i];
        }
    /* The previous plan as the leader would read it, in a scrambled order,
     * and naming dead members too. */
    for (i = 0; i < MAX_ITEMS; i++)
        if (w->item_alive[i] && w->prev_owner[i] >= 0) {
            in->prev[in->n_prev].item = w->item_names[i];
            in->prev[in->n_prev++].member = w->member_names[w->prev_owner[i]];
        }
    for (i = in->n_prev - 1; i > 0; i--) {
        int j = rnd_below(i + 1);
        zkc__wp_line t = in->prev[i];

        in->prev[i] = in->prev[j];
        in->prev[j] = t;
    }
}

/* The fewest items any plan meeting the bound must move, computed from the
 * definition: member i keeps at most min(held_i, quota_i) items, quota_i is
 * floor_i or floor_i + 1 (only with a remainder), and exactly `rem` members
 * get the + 1: the best choice gives them to members holding more than
 * their floor. */
static int lower_bound_moves(const struct world *w, const struct input *in)
{
    int64_t total = 0, rem, floor_[MAX_MEMBERS], frac[MAX_MEMBERS], held[MAX_MEMBERS];
    int64_t keep = 0, sum_floor = 0, benefit = 0;
    int i, had_owner = 0;

    for (i = 0; i < in->n_members; i++)
        total += in->members[i].weight;
    for (i = 0; i < in->n_members; i++) {
        floor_[i] = (int64_t)in->n_items * in->members[i].weight / total;
        frac[i] = (int64_t)in->n_items * in->members[i].weight % total;
        sum_floor += floor_[i];
        held[i] = 0;
    }
    rem = in->n_items - sum_floor;
    for (i = 0; i < in->n_items; i++) {
        int o = w->prev_owner[in->item_ix[i]], k;

        if (o < 0)
            continue;
        had_owner++;
        for (k = 0; k < in->n_members; k++)
            if (in->member_ix[k] == o)
                held[k]++;
    }
    for (i = 0; i < in->n_members; i++) {
        keep += held[i] < floor_[i] ? held[i] : floor_[i];
        if (frac[i] > 0 && held[i] > floor_[i])
            benefit++;
    }
    keep += benefit < rem ? benefit : rem;
    return had_owner - (int)keep;
}

static int steps_checked;

/* Plan, check the properties, make the plan the world's previous one.
 * Returns the number of items moved (the owner changed from a previous
 * owner). */
static int plan_and_check(struct world *w, const char *what)
{
    struct input in, in2;
    int owner[MAX_ITEMS], owner2[MAX_ITEMS], count[MAX_MEMBERS] = {0};
    int64_t total = 0;
    int i, rc, moved = 0, lb;

    build(w, &in);
    rc = zkc__work_plan(in.items, in.n_items, in.members, in.n_members, in.prev, in.n_prev, owner);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    /* determinism: same input in another order of prev -> same plan */
    build(w, &in2);
    rc = zkc__work_plan(in2.items, in2.n_items, in2.members, in2.n_members, in2.prev, in2.n_prev,
                        owner2);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(memcmp(owner, owner2, sizeof(int) * (size_t)in.n_items), 0);

    for (i = 0; i < in.n_members; i++)
        total += in.members[i].weight;
    for (i = 0; i < in.n_items; i++) {
        if (in.n_members == 0) {
            CU_ASSERT_EQUAL(owner[i], -1);
            continue;
        }
        /* every item to a live member */
        CU_ASSERT_FATAL(owner[i] >= 0 && owner[i] < in.n_members);
        count[owner[i]]++;
    }
    /* balance: |count_i - N w_i / W| < 1, i.e. |count_i W - N w_i| < W */
    for (i = 0; i < in.n_members; i++) {
        int64_t d = (int64_t)count[i] * total - (int64_t)in.n_items * in.members[i].weight;

        if (d < 0)
            d = -d;
        if (d >= total)
            fprintf(
                stderr,
                "seed %u, %s: member %s has %d of %d items, weight %" PRId64 " of %" PRId64 "\n",
                seed, what, in.members[i].id, count[i], in.n_items, in.members[i].weight, total);
        CU_ASSERT(d < total);
    }
    /* minimal moves */
    lb = lower_bound_moves(w, &in);
    for (i = 0; i < in.n_items; i++) {
        int o = w->prev_owner[in.item_ix[i]];

        if (o >= 0 && in.n_members > 0 && in.member_ix[owner[i]] != o)
            moved++;
    }
    if (in.n_members > 0) {
        if (moved != lb)
            fprintf(stderr, "seed %u, %s: moved %d, lower bound %d\n", seed, what, moved, lb);
        CU_ASSERT_EQUAL(moved, lb);
    }
    for (i = 0; i < MAX_ITEMS; i++)
        w->prev_owner[i] = -1;
    for (i = 0; i < in.n_items; i++)
        w->prev_owner[in.item_ix[i]] = in.n_members ? in.member_ix[owner[i]] : -1;
    steps_checked++;
    return moved;
}

static void world_init(struct world *w)
{
    int i;

    memset(w, 0, sizeof(*w));
    for (i = 0; i < MAX_ITEMS; i++) {
        snprintf(w->item_names[i], sizeof(w->item_names[i]), "item-%04d", i);
        w->prev_owner[i] = -1;
    }
    for (i = 0; i < MAX_MEMBERS; i++) {
        snprintf(w->member_names[i], sizeof(w->member_names[i]), "m%03d", i);
        w->weight[i] = 1;
    }
}

static int alive_count(const int *alive, int n)
{
    int i, c = 0;

    for (i = 0; i < n; i++)
        c += alive[i] != 0;
    return c;
}

static void test_fixed_cases(void)
{
    const char *items[] = {"a", "b", "c", "d", "e", "f"};
    zkc__wp_member two[] = {{"m1", 1}, {"m2", 1}};
    zkc__wp_member three[] = {{"m1", 1}, {"m2", 1}, {"m3", 1}};
    zkc__wp_member weighted[] = {{"m1", 2}, {"m2", 1}};
    zkc__wp_line prev[6];
    int owner[6], i, c[3] = {0};

    /* no members: nobody owns anything */
    CU_ASSERT_EQUAL(zkc__work_plan(items, 6, NULL, 0, NULL, 0, owner), 0);
    for (i = 0; i < 6; i++)
        CU_ASSERT_EQUAL(owner[i], -1);
    /* two members, fresh: three each, by name order */
    CU_ASSERT_EQUAL(zkc__work_plan(items, 6, two, 2, NULL, 0, owner), 0);
    CU_ASSERT_EQUAL(owner[0], 0);
    CU_ASSERT_EQUAL(owner[2], 0);
    CU_ASSERT_EQUAL(owner[3], 1);
    CU_ASSERT_EQUAL(owner[5], 1);
    /* a third joins: exactly two items move, one from each */
    for (i = 0; i < 6; i++) {
        prev[i].item = items[i];
        prev[i].member = two[owner[i]].id;
    }
    CU_ASSERT_EQUAL(zkc__work_plan(items, 6, three, 3, prev, 6, owner), 0);
    for (i = 0; i < 6; i++)
        c[owner[i]]++;
    CU_ASSERT_EQUAL(c[0], 2);
    CU_ASSERT_EQUAL(c[1], 2);
    CU_ASSERT_EQUAL(c[2], 2);
    CU_ASSERT_EQUAL(owner[0], 0);
    CU_ASSERT_EQUAL(owner[1], 0);
    CU_ASSERT_EQUAL(owner[3], 1);
    CU_ASSERT_EQUAL(owner[4], 1);
    /* weights 2:1 -> 4 and 2 */
    CU_ASSERT_EQUAL(zkc__work_plan(items, 6, weighted, 2, NULL, 0, owner), 0);
    c[0] = c[1] = 0;
    for (i = 0; i < 6; i++)
        c[owner[i]]++;
    CU_ASSERT_EQUAL(c[0], 4);
    CU_ASSERT_EQUAL(c[1], 2);
    /* garbage in the previous plan is ignored: unknown items and members,
     * NULL fields, duplicates (the first line wins) */
    prev[0].item = "zzz";
    prev[0].member = "m1";
    prev[1].item = NULL;
    prev[1].member = "m2";
    prev[2].item = "a";
    prev[2].member = "nobody";
    prev[3].item = "b";
    prev[3].member = NULL;
    prev[4].item = "c";
    prev[4].member = "m2";
    prev[5].item = "c";
    prev[5].member = "m1";
    CU_ASSERT_EQUAL(zkc__work_plan(items, 6, two, 2, prev, 6, owner), 0);
    CU_ASSERT_EQUAL(owner[2], 1); /* c stays with m2 */
}

static void test_bad_input(void)
{
    const char *unsorted[] = {"b", "a"};
    const char *dup[] = {"a", "a"};
    const char *ok[] = {"a", "b"};
    zkc__wp_member m_dup[] = {{"m", 1}, {"m", 1}};
    zkc__wp_member m_w0[] = {{"m", 0}};
    zkc__wp_member m_big[] = {{"m", ZKC__WORK_MAX_WEIGHT + 1}};
    zkc__wp_member m_ok[] = {{"m", 1}};
    int owner[2];

    CU_ASSERT_EQUAL(zkc__work_plan(unsorted, 2, m_ok, 1, NULL, 0, owner), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_plan(dup, 2, m_ok, 1, NULL, 0, owner), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_plan(ok, 2, m_dup, 2, NULL, 0, owner), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_plan(ok, 2, m_w0, 1, NULL, 0, owner), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_plan(ok, 2, m_big, 1, NULL, 0, owner), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_plan(ok, -1, m_ok, 1, NULL, 0, owner), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_plan(ok, 2, m_ok, 1, NULL, 0, owner), 0);
}

static void test_weight_parse(void)
{
    char why[128];
    int64_t w;

    CU_ASSERT_EQUAL(zkc__work_weight(NULL, &w, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT_EQUAL(zkc__work_weight("{\"zone\":\"a\"}", &w, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT_EQUAL(zkc__work_weight("{\"weight\":3}", &w, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(w, 3);
    CU_ASSERT_EQUAL(zkc__work_weight("{\"weight\":0}", &w, why, sizeof(why)), 1);
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT(strstr(why, "weight") != NULL);
    CU_ASSERT_EQUAL(zkc__work_weight("{\"weight\":-2}", &w, why, sizeof(why)), 1);
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT_EQUAL(zkc__work_weight("{\"weight\":\"3\"}", &w, why, sizeof(why)), 1);
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT_EQUAL(zkc__work_weight("{\"weight\":2.5}", &w, why, sizeof(why)), 1);
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT_EQUAL(zkc__work_weight("{\"weight\":99999999999}", &w, why, sizeof(why)), 1);
    CU_ASSERT_EQUAL(w, 1);
    CU_ASSERT_EQUAL(zkc__work_weight("not json", &w, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(w, 1);
}

/* Equal weights: a join moves at most ceil(N / n) items (all to the
 * newcomer) and a leave moves exactly the leaver's items. */
static void test_join_leave_equal_weights(void)
{
    struct world w;
    int i, n, moved, leaver_items;

    world_init(&w);
    for (i = 0; i < 120; i++)
        w.item_alive[i] = 1;
    for (n = 0; n < 12; n++) {
        int before[MAX_ITEMS];

        memcpy(before, w.prev_owner, sizeof(before));
        w.member_alive[n] = 1;
        moved = plan_and_check(&w, "join");
        CU_ASSERT(moved <= (120 + n) / (n + 1));
        for (i = 0; i < 120; i++)
            if (before[i] >= 0 && w.prev_owner[i] != before[i])
                CU_ASSERT_EQUAL(w.prev_owner[i], n); /* moved only to the newcomer */
    }
    for (n = 0; n < 11; n++) {
        int victim = (n * 5) % 12, before[MAX_ITEMS];

        if (!w.member_alive[victim])
            continue;
        memcpy(before, w.prev_owner, sizeof(before));
        leaver_items = 0;
        for (i = 0; i < 120; i++)
            leaver_items += w.prev_owner[i] == victim;
        w.member_alive[victim] = 0;
        moved = plan_and_check(&w, "leave");
        CU_ASSERT_EQUAL(moved, leaver_items);
        for (i = 0; i < 120; i++)
            if (before[i] != victim)
                CU_ASSERT_EQUAL(w.prev_owner[i], before[i]);
    }
}

static void test_random_sequences(void)
{
    int run, step;

    steps_checked = 0;
    for (run = 0; run < 40; run++) {
        struct world w;

        world_init(&w);
        for (step = 0; step < 150; step++) {
            int op = rnd_below(10), k;
            const char *what;

            if (op < 3) {
                what = "join";
                k = rnd_below(MAX_MEMBERS);
                w.member_alive[k] = 1;
                w.weight[k] = rnd_below(4) == 0 ? 1 + rnd_below(5) : 1;
            } else if (op < 5) {
                what = "leave";
                k = rnd_below(MAX_MEMBERS);
                w.member_alive[k] = 0;
            } else if (op < 6) {
                what = "weight";
                k = rnd_below(MAX_MEMBERS);
                w.weight[k] = 1 + rnd_below(run % 2 ? 7 : 3);
            } else if (op < 8) {
                int c = 1 + rnd_below(8);

                what = "add items";
                while (c--)
                    w.item_alive[rnd_below(MAX_ITEMS)] = 1;
            } else {
                int c = 1 + rnd_below(6);

                what = "remove items";
                while (c--)
                    w.item_alive[rnd_below(MAX_ITEMS)] = 0;
            }
            plan_and_check(&w, what);
            if (CU_get_number_of_failures()) {
                fprintf(stderr, "seed %u: failed at run %d step %d (%s), %d members, %d items\n",
                        seed, run, step, what, alive_count(w.member_alive, MAX_MEMBERS),
                        alive_count(w.item_alive, MAX_ITEMS));
                return;
            }
        }
    }
    CU_ASSERT(steps_checked == 40 * 150);
}

/* A large plan: 1,000 items over 10 members, then one joins. */
static void test_thousand_items(void)
{
    static char names[1000][16];
    const char *items[1000];
    zkc__wp_member mem[11];
    zkc__wp_line prev[1000];
    char ids[11][8];
    int owner[1000], owner2[1000], i, moved = 0;

    for (i = 0; i < 1000; i++) {
        snprintf(names[i], sizeof(names[i]), "p%04d", i);
        items[i] = names[i];
    }
    for (i = 0; i < 11; i++) {
        snprintf(ids[i], sizeof(ids[i]), "w%02d", i);
        mem[i].id = ids[i];
        mem[i].weight = 1;
    }
    CU_ASSERT_EQUAL_FATAL(zkc__work_plan(items, 1000, mem, 10, NULL, 0, owner), 0);
    for (i = 0; i < 1000; i++) {
        prev[i].item = items[i];
        prev[i].member = mem[owner[i]].id;
    }
    CU_ASSERT_EQUAL_FATAL(zkc__work_plan(items, 1000, mem, 11, prev, 1000, owner2), 0);
    for (i = 0; i < 1000; i++)
        if (owner2[i] != owner[i]) {
            moved++;
            CU_ASSERT_EQUAL(owner2[i], 10);
        }
    /* 1000 / 11 = 90.9: the newcomer gets 90 or 91 */
    CU_ASSERT(moved == 90 || moved == 91);
}

/* The plan node's codec: round trip, and hostile data refused with a
 * reason (never a crash, nothing half-filled). */
static void test_plan_codec(void)
{
    zkc__wp_line lines[] = {{"a", "m1"}, {"b", "m2"}, {"c", NULL}};
    zkc__wplan p = {0}, q = {0};
    char *text = NULL, why[200];
    size_t len = 0;
    static const char *const bad[] = {
        "",
        "not json",
        "[1,2]",
        "{\"assign\":{}}",
        "{\"version\":0,\"assign\":{}}",
        "{\"version\":\"3\",\"assign\":{}}",
        "{\"version\":3}",
        "{\"version\":3,\"assign\":[]}",
        "{\"version\":3,\"assign\":{\"a\":1}}",
        "{\"version\":3,\"assign\":{\"a\":\"\"}}",
        "{\"version\":3,\"assign\":{\"a/b\":\"m\"}}",
        "{\"version\":3,\"assign\":{\"a b\":\"m\"}}",
        "{\"version\":3,\"assign\":{\"a\":\"m\",\"a\":\"n\"}}",
        "{\"version\":3,\"leader\":7,\"assign\":{}}",
    };
    char longid[400];
    size_t i;

    p.version = 7;
    p.leader = "m1";
    p.lines = lines;
    p.n = 3;
    CU_ASSERT_EQUAL_FATAL(zkc__wplan_encode(&p, &text, &len), 0);
    CU_ASSERT_EQUAL(strlen(text), len);
    CU_ASSERT_EQUAL(zkc__wplan_decode(text, (int)len, &q, why, sizeof(why)), 0);
    CU_ASSERT_EQUAL(q.version, 7);
    CU_ASSERT_STRING_EQUAL(q.leader, "m1");
    CU_ASSERT_EQUAL(q.n, 2); /* "c" goes to nobody: not written */
    CU_ASSERT_EQUAL(zkc__wplan_find(&q, "b"), 1);
    CU_ASSERT_STRING_EQUAL(q.lines[1].member, "m2");
    CU_ASSERT_EQUAL(zkc__wplan_find(&q, "c"), -1);
    free(text);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        why[0] = '\0';
        CU_ASSERT_EQUAL(zkc__wplan_decode(bad[i], (int)strlen(bad[i]), &q, why, sizeof(why)),
                        ZKC_EBADDATA);
        CU_ASSERT(why[0] != '\0');
        CU_ASSERT_EQUAL(q.n, 0);
        CU_ASSERT_PTR_NULL(q.lines);
    }
    /* a member id longer than 255 bytes */
    memset(longid, 'x', sizeof(longid));
    {
        static const char head[] = "{\"version\":1,\"assign\":{\"a\":\"";

        memcpy(longid, head, sizeof(head) - 1);
    }
    memcpy(longid + sizeof(longid) - 3, "\"}}", 3);
    CU_ASSERT_EQUAL(zkc__wplan_decode(longid, (int)sizeof(longid), &q, why, sizeof(why)),
                    ZKC_EBADDATA);
    /* NUL bytes inside the data, a NULL buffer */
    CU_ASSERT_EQUAL(zkc__wplan_decode("{\"version\":1,\0}", 15, &q, why, sizeof(why)),
                    ZKC_EBADDATA);
    CU_ASSERT_EQUAL(zkc__wplan_decode(NULL, 0, &q, why, sizeof(why)), ZKC_EBADDATA);
    zkc__wplan_clear(&q);
    /* item names */
    CU_ASSERT_EQUAL(zkc__work_item_ok("p-00_a.b:c"), 0);
    CU_ASSERT_EQUAL(zkc__work_item_ok(""), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_item_ok(".."), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_item_ok("a\x7f"), ZKC_EINVAL);
    CU_ASSERT_EQUAL(zkc__work_item_ok("\xc3\xa9"), ZKC_EINVAL);
}

int main(void)
{
    CU_pSuite s;
    const char *env = getenv("ZKC_WORK_SEED");
    int failed;

    seed = env && *env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    rng_state = 0x9E3779B97F4A7C15ULL ^ seed;
    if (!rng_state)
        rng_state = 1;
    printf("work plan property tests: seed %u (ZKC_WORK_SEED=%u to replay)\n", seed, seed);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    s = CU_add_suite("work plan", NULL, NULL);
    if (!s || !CU_add_test(s, "fixed cases", test_fixed_cases) ||
        !CU_add_test(s, "bad input", test_bad_input) ||
        !CU_add_test(s, "weight from metadata", test_weight_parse) ||
        !CU_add_test(s, "plan node codec, hostile plans", test_plan_codec) ||
        !CU_add_test(s, "join and leave, equal weights", test_join_leave_equal_weights) ||
        !CU_add_test(s, "random joins/leaves/weights/items", test_random_sequences) ||
        !CU_add_test(s, "1,000 items, a join", test_thousand_items)) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    CU_cleanup_registry();
    if (failed)
        printf("work plan: failed with seed %u\n", seed);
    return failed ? 1 : 0;
}
