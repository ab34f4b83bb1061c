/* Raw reads for zkcoordctl: the children and stat of a node, for `tree`,
 * `clusters` and `locks`. Thin wrappers over the library's public read API
 * (zkcoord/read.h): the CLI never touches the ZooKeeper handle. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void to_cli_stat(const zkc_stat *z, cli_stat *st)
{
    st->czxid = z->czxid;
    st->mzxid = z->mzxid;
    st->ctime_ms = z->ctime_ms;
    st->mtime_ms = z->mtime_ms;
    st->owner = z->owner;
    st->data_length = z->data_length;
    st->num_children = z->num_children;
    st->version = z->version;
}

int cli_zk_children(zkc_session *s, const char *path, int timeout_ms, int watch, char ***names,
                    int *n, cli_stat *st)
{
    zkc_stat zs;
    int rc;

    if (watch)
        return ZKC_EINVAL; /* watch with a zkc_cache instead */
    rc = zkc_get_children(s, path, timeout_ms, names, n, &zs);
    if (rc == 0 && st)
        to_cli_stat(&zs, st);
    return rc;
}

int cli_zk_stat(zkc_session *s, const char *path, int timeout_ms, int watch, cli_stat *st)
{
    zkc_stat zs;
    int rc;

    if (watch)
        return ZKC_EINVAL;
    rc = zkc_get(s, path, timeout_ms, NULL, NULL, &zs);
    if (rc == 0 && st)
        to_cli_stat(&zs, st);
    return rc;
}

void cli_names_free(char **names, int n)
{
    zkc_strings_free(names, n);
}
