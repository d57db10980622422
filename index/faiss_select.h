/* A faiss search restricted to the labels a caller accepts, for the index types the
 * project builds (IVF, and Flat, SQ8 and HNSW under an IndexIDMap). faiss 1.7.3 honours
 * an IDSelector in SearchParameters, but its C API has no way to pass one, and its
 * IndexIDMap refuses search parameters, so this thin C++ file reaches the inner index and
 * translates ids itself. The selector is asked for each candidate before its distance is
 * computed, so a search over a third of the labels costs about a third of the scan. */
#ifndef SYN_INDEX_FAISS_SELECT_H
#define SYN_INDEX_FAISS_SELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "c_api/Index_c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Whether a label may be returned; called from faiss's scan, on the searching thread. */
typedef bool (*syn_faiss_member_fn)(void *ctx, int64_t label);

/* One query of the index's dimension; up to k results, best first, in distances and
 * labels (k each; -1 labels pad a short answer), with the index's own nprobe (IVF) or
 * efSearch (HNSW). 0, or -1 with faiss's message in err. */
int syn_faiss_search_selected(const FaissIndex *index, const float *query, int64_t k,
                              float *distances, int64_t *labels, syn_faiss_member_fn member,
                              void *ctx, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
