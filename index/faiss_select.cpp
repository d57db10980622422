/* See faiss_select.h. */
#include "index/faiss_select.h"

#include <faiss/IndexHNSW.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/impl/IDSelector.h>

#include <cstdio>
#include <exception>
#include <memory>

namespace {

/* Asks the caller about external labels. */
struct CallbackSelector : faiss::IDSelector {
  syn_faiss_member_fn member;
  void *ctx;
  CallbackSelector(syn_faiss_member_fn m, void *c) : member(m), ctx(c) {}
  bool is_member(idx_t id) const override { return member(ctx, id); }
};

/* Under an IndexIDMap the inner index sees positions 0..n-1: map them to labels first. */
struct TranslatedSelector : faiss::IDSelector {
  const std::vector<faiss::Index::idx_t> &id_map;
  const faiss::IDSelector &inner;
  TranslatedSelector(const std::vector<faiss::Index::idx_t> &m, const faiss::IDSelector &s)
      : id_map(m), inner(s) {}
  bool is_member(idx_t id) const override {
    return id >= 0 && (size_t)id < id_map.size() && inner.is_member(id_map[id]);
  }
};

/* Search parameters of the right kind for idx, carrying sel; they replace the index's
 * own nprobe or efSearch, so those are copied in. */
std::unique_ptr<faiss::SearchParameters> params_for(const faiss::Index *idx,
                                                    const faiss::IDSelector *sel) {
  std::unique_ptr<faiss::SearchParameters> p;
  if (auto *ivf_index = dynamic_cast<const faiss::IndexIVF *>(idx)) {
    auto *ivf = new faiss::SearchParametersIVF();
    ivf->nprobe = ivf_index->nprobe;
    p.reset(ivf);
  } else if (auto *hnsw_index = dynamic_cast<const faiss::IndexHNSW *>(idx)) {
    auto *h = new faiss::SearchParametersHNSW();
    h->efSearch = hnsw_index->hnsw.efSearch;
    p.reset(h);
  } else {
    p.reset(new faiss::SearchParameters());
  }
  p->sel = const_cast<faiss::IDSelector *>(sel);
  return p;
}

}  // namespace

extern "C" int syn_faiss_search_selected(const FaissIndex *index, const float *query, int64_t k,
                                         float *distances, int64_t *labels,
                                         syn_faiss_member_fn member, void *ctx, char *err,
                                         size_t err_len) {
  try {
    auto *idx = reinterpret_cast<const faiss::Index *>(index);
    CallbackSelector sel(member, ctx);
    if (auto *map = dynamic_cast<const faiss::IndexIDMap *>(idx)) {
      TranslatedSelector tsel(map->id_map, sel);
      auto params = params_for(map->index, &tsel);
      map->index->search(1, query, k, distances, labels, params.get());
      for (int64_t i = 0; i < k; i++)
        if (labels[i] >= 0) labels[i] = map->id_map[labels[i]];
      return 0;
    }
    auto params = params_for(idx, &sel);
    idx->search(1, query, k, distances, labels, params.get());
    return 0;
  } catch (const std::exception &e) {
    if (err && err_len) snprintf(err, err_len, "%s", e.what());
    return -1;
  }
}
