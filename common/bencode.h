/* Bencoding (BEP 3) writer for tracker replies.
 *
 * Every function appends to a syn_buf and returns 0 or -ENOMEM. The caller balances
 * dict/list begin and end and writes dictionary keys in sorted order, as BEP 3 asks. */
#ifndef SYN_COMMON_BENCODE_H
#define SYN_COMMON_BENCODE_H

#include "common/buf.h"

int syn_bencode_int(syn_buf *b, int64_t value);
int syn_bencode_bytes(syn_buf *b, const void *data, size_t len);
int syn_bencode_str(syn_buf *b, const char *s);
int syn_bencode_dict_begin(syn_buf *b);
int syn_bencode_list_begin(syn_buf *b);
int syn_bencode_end(syn_buf *b);
/* A whole `d14:failure reason<n>:<reason>e` reply. */
int syn_bencode_failure(syn_buf *b, const char *reason);

#endif
