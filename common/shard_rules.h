/* The rules a shard record and a search must follow, in one place: the router checks
 * every API request with them (and answers 4xx naming the field), and the index checks
 * every write with the same functions, so nothing a node would reject gets past a
 * router, and the two can never disagree (design.md, "JSON API").
 *
 * Pure functions, no allocation, no state: any thread may call them. */
#ifndef SYN_COMMON_SHARD_RULES_H
#define SYN_COMMON_SHARD_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on one shard record, and on a search. */
#define SYN_SHARD_MAX_DIM 4096     /* values in an embedding */
#define SYN_SHARD_MAX_NAME 512     /* bytes of display_name */
#define SYN_SHARD_MAX_MODEL 128    /* bytes of a model name (and so of its key) */
#define SYN_SHARD_MAX_TAGS 64      /* tags per shard, and per filter */
#define SYN_SHARD_MAX_TAG 64       /* bytes per tag */
#define SYN_SHARD_MAX_TEXT 16384   /* bytes of description */
#define SYN_SHARD_MAX_METADATA 65536 /* bytes of the metadata object as compact JSON */
#define SYN_SHARD_MAX_AGENT_ID 4096  /* bytes of creator_agent_id */
/* Bytes of creator_public_key and of signature, each. Room for post-quantum identities:
 * an ML-DSA-87 signature is 4,627 bytes (6,172 characters in base64), its public key
 * 2,592 bytes (about 4,900 characters as base64 of its PEM); SLH-DSA's largest
 * signatures (49,856 bytes) stay out, as they would dominate every search hit. */
#define SYN_SHARD_MAX_CRYPTO 16384
#define SYN_SEARCH_MAX_LIMIT 1000  /* largest `limit` of a search */
#define SYN_SEARCH_MAX_QUERY 1024  /* bytes of a text query */
#define SYN_SEARCH_MAX_FEEDBACK 16 /* keyword hits whose embeddings feed a feedback search */

/* An info_hash as the API accepts it: 40 hex digits (v1) or 64 (v2), either case.
 * Fills the lower-case form (NUL-terminated, 65 bytes) and, when key is not NULL, the
 * 20 bytes that name its swarm and its partition (a v2 hash truncated, as BEP 52 clients
 * announce it). 0 or -EINVAL. */
int syn_info_hash_parse(const char *text, size_t len, char hex_out[65], uint8_t key[20]);

/* The same for a NUL-terminated string (NULL is -EINVAL). */
int syn_info_hash_normalize(const char *text, char hex_out[65]);

/* Model-name normalisation (design decision 6): surrounding white space trimmed,
 * everything up to the last '/' dropped (the "org/" of a hub name), a trailing ":latest"
 * (Ollama's default tag) dropped, ASCII lower-cased. "nomic-ai/nomic-embed-text-v1.5"
 * and "nomic-embed-text-v1.5" give the same key. 0, -EINVAL when nothing is left (an
 * empty or blank name), or -ENAMETOOLONG when out (cap bytes with the NUL) is too
 * small. */
int syn_model_key(const char *model, char *out, size_t cap);
/* The same for len bytes that need not end in a NUL. */
int syn_model_key_n(const char *model, size_t len, char *out, size_t cap);

/* The checks below take the field's name for the message: 0 when the value is
 * acceptable, else -EINVAL with a message naming the field and the rule in err (for
 * example "\"tags\": each tag must be 1 to 64 bytes"). err may be NULL. */

/* A model name as given: at most SYN_SHARD_MAX_MODEL bytes, no control characters, and
 * a non-empty key (so " " and "org/" are refused). */
int syn_model_check(const char *field, const char *model, size_t len, char *err, size_t errlen);

/* One tag: 1..SYN_SHARD_MAX_TAG bytes, no control characters, no ',' (magnet links
 * join tags with commas). */
int syn_tag_check(const char *field, const char *tag, size_t len, char *err, size_t errlen);

/* A text field of at most max bytes without NUL; `required` also refuses an empty one
 * (text NULL means absent). */
int syn_text_check(const char *field, const char *text, size_t len, size_t max, bool required,
                   char *err, size_t errlen);

/* An embedding's dimension: 1..SYN_SHARD_MAX_DIM. */
int syn_dimension_check(const char *field, uint64_t dimension, char *err, size_t errlen);

/* Whether any byte is a control character (below 0x20, or 0x7f). */
bool syn_has_control(const char *text, size_t len);

#endif
