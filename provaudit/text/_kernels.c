/* provaudit compiled kernels: the hot loops of shingling, signing and lookup.
 *
 * Compiled at install time into the extension module provaudit.text._kernels
 * (_kernels_module.c includes this file; setup.py builds it), and called through
 * ctypes by provaudit/text/kernels.py. Every function has a numpy/Python twin and
 * the tests check them equal bit for bit. No Python API is used here: plain arrays
 * in, plain arrays out, caller-allocated.
 */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

typedef uint64_t u64;
typedef uint32_t u32;
typedef int64_t i64;

/* ---------------------------------------------------------------- XXH3-64 --- */
/* The XXH3 reference algorithm, 64-bit output, seed 0, default secret. */
static const uint8_t SECRET[192] = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};

#define P32_1 0x9E3779B1ULL
#define P32_2 0x85EBCA77ULL
#define P32_3 0xC2B2AE3DULL
#define P64_1 0x9E3779B185EBCA87ULL
#define P64_2 0xC2B2AE3D27D4EB4FULL
#define P64_3 0x165667B19E3779F9ULL
#define P64_4 0x85EBCA77C2B2AE63ULL
#define P64_5 0x27D4EB2F165667C5ULL
#define PMX1 0x165667919E3779F9ULL
#define PMX2 0x9FB21C651E98DF25ULL

static inline u64 r64(const uint8_t *p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    u64 v; memcpy(&v, p, 8); return v;
#else
    return (u64)p[0] | ((u64)p[1] << 8) | ((u64)p[2] << 16) | ((u64)p[3] << 24) | ((u64)p[4] << 32) |
           ((u64)p[5] << 40) | ((u64)p[6] << 48) | ((u64)p[7] << 56);
#endif
}
static inline u64 r32(const uint8_t *p) {
    return (u64)p[0] | ((u64)p[1] << 8) | ((u64)p[2] << 16) | ((u64)p[3] << 24);
}
static inline u64 fold(u64 a, u64 b) {
    __uint128_t m = (__uint128_t)a * b;
    return (u64)m ^ (u64)(m >> 64);
}
static inline u64 avalanche(u64 h) { h ^= h >> 37; h *= PMX1; return h ^ (h >> 32); }
static inline u64 avalanche64(u64 h) {
    h ^= h >> 33; h *= P64_2; h ^= h >> 29; h *= P64_3; return h ^ (h >> 32);
}
static inline u64 mix16(const uint8_t *p, const uint8_t *s) { return fold(r64(p) ^ r64(s), r64(p + 8) ^ r64(s + 8)); }
static inline void acc512(u64 *acc, const uint8_t *p, const uint8_t *s) {
    for (int i = 0; i < 8; i++) {
        u64 v = r64(p + 8 * i), k = v ^ r64(s + 8 * i);
        acc[i ^ 1] += v;
        acc[i] += (k & 0xFFFFFFFFULL) * (k >> 32);
    }
}

u64 pa_xxh3_64(const uint8_t *p, i64 n_) {
    u64 n = (u64)n_;
    if (n == 0) return avalanche64(r64(SECRET + 56) ^ r64(SECRET + 64));
    if (n <= 3) {
        u64 c = ((u64)p[0] << 16) | ((u64)p[n >> 1] << 24) | (u64)p[n - 1] | (n << 8);
        return avalanche64(c ^ (r32(SECRET) ^ r32(SECRET + 4)));
    }
    if (n <= 8) {
        u64 x = r32(p + n - 4) + (r32(p) << 32);
        x ^= r64(SECRET + 8) ^ r64(SECRET + 16);
        x ^= ((x << 49) | (x >> 15)) ^ ((x << 24) | (x >> 40));
        x *= PMX2;
        x ^= (x >> 35) + n;
        x *= PMX2;
        return x ^ (x >> 28);
    }
    if (n <= 16) {
        u64 lo = r64(p) ^ (r64(SECRET + 24) ^ r64(SECRET + 32));
        u64 hi = r64(p + n - 8) ^ (r64(SECRET + 40) ^ r64(SECRET + 48));
        return avalanche(n + __builtin_bswap64(lo) + hi + fold(lo, hi));
    }
    u64 acc = n * P64_1;
    if (n <= 128) {
        if (n > 32) {
            if (n > 64) {
                if (n > 96) { acc += mix16(p + 48, SECRET + 96); acc += mix16(p + n - 64, SECRET + 112); }
                acc += mix16(p + 32, SECRET + 64); acc += mix16(p + n - 48, SECRET + 80);
            }
            acc += mix16(p + 16, SECRET + 32); acc += mix16(p + n - 32, SECRET + 48);
        }
        acc += mix16(p, SECRET); acc += mix16(p + n - 16, SECRET + 16);
        return avalanche(acc);
    }
    if (n <= 240) {
        for (int i = 0; i < 8; i++) acc += mix16(p + 16 * i, SECRET + 16 * i);
        acc = avalanche(acc);
        for (u64 i = 8; i < n / 16; i++) acc += mix16(p + 16 * i, SECRET + 16 * (i - 8) + 3);
        acc += mix16(p + n - 16, SECRET + 136 - 17);
        return avalanche(acc);
    }
    u64 a[8] = {P32_3, P64_1, P64_2, P64_3, P64_4, P32_2, P64_5, P32_1};
    const u64 stripes = (192 - 64) / 8, block = 64 * stripes, blocks = (n - 1) / block;
    for (u64 k = 0; k < blocks; k++) {
        for (u64 s = 0; s < stripes; s++) acc512(a, p + k * block + 64 * s, SECRET + 8 * s);
        for (int i = 0; i < 8; i++) {
            u64 x = a[i];
            x ^= x >> 47;
            x ^= r64(SECRET + 192 - 64 + 8 * i);
            a[i] = x * P32_1;
        }
    }
    u64 last = ((n - 1) - block * blocks) / 64;
    for (u64 s = 0; s < last; s++) acc512(a, p + blocks * block + 64 * s, SECRET + 8 * s);
    acc512(a, p + n - 64, SECRET + 192 - 64 - 7);
    u64 r = n * P64_1;
    for (int i = 0; i < 4; i++) r += fold(a[2 * i] ^ r64(SECRET + 11 + 16 * i), a[2 * i + 1] ^ r64(SECRET + 11 + 16 * i + 8));
    return avalanche(r);
}

/* ------------------------------------------------------------- tokenizing --- */
static inline int is_space(uint8_t c) { return c == 32 || (c >= 9 && c <= 13) || (c >= 28 && c <= 31); }

/* xxh3 of every ASCII-whitespace-separated token of buf (records separated by NUL).
 * out: room for len/2+1 hashes; counts: n_records zeros. Returns the number of tokens. */
i64 pa_hash_words(const uint8_t *buf, i64 len, i64 n_records, u64 *out, i64 *counts) {
    i64 k = 0, rec = 0, start = -1;
    for (i64 i = 0; i <= len; i++) {
        uint8_t c = i < len ? buf[i] : 0;
        if (c == 0 || is_space(c)) {
            if (start >= 0) {
                out[k++] = pa_xxh3_64(buf + start, i - start);
                if (rec < n_records) counts[rec]++;
                start = -1;
            }
            if (c == 0 && i < len) rec++;
        } else if (start < 0) {
            start = i;
        }
    }
    return k;
}

/* xxh3 of every character (UTF-8 sequence), whitespace runs collapsed to one space and
 * stripped at both ends of each record. out: room for len+1 hashes. Returns the count. */
i64 pa_hash_chars(const uint8_t *buf, i64 len, i64 n_records, u64 *out, i64 *counts) {
    const uint8_t space = 32;
    const u64 h_space = pa_xxh3_64(&space, 1);
    i64 k = 0, rec = 0, i = 0;
    int started = 0, pending = 0;
    while (i < len) {
        uint8_t c = buf[i];
        if (c == 0) {
            rec++; started = pending = 0; i++;
        } else if (is_space(c)) {
            pending = started; i++;
        } else {
            i64 w = c < 0x80 ? 1 : (c < 0xE0 ? 2 : (c < 0xF0 ? 3 : 4));
            if (w > len - i) w = len - i;
            if (pending) { out[k++] = h_space; counts[rec]++; pending = 0; }
            out[k++] = pa_xxh3_64(buf + i, w);
            counts[rec]++;
            started = 1;
            i += w;
        }
    }
    return k;
}

/* ---------------------------------------------------------------- shingles --- */
static inline u64 fmix64(u64 h) {
    h ^= h >> 33; h *= 0xFF51AFD7ED558CCDULL; h ^= h >> 33; h *= 0xC4CEB9FE1A85EC53ULL; return h ^ (h >> 33);
}

/* Shingle hashes fmix64(t0*M^(w-1) + ... + t(w-1) + w), w = min(count, ngram), per record.
 * offsets (n+1) must be filled by the caller (record r owns out[offsets[r]:offsets[r+1]]). */
void pa_combine(const u64 *tok, const i64 *counts, i64 n, i64 ngram, const i64 *offsets, u64 *out) {
    const u64 M = 0x9E3779B97F4A7C15ULL;
    i64 t0 = 0;
    for (i64 r = 0; r < n; r++) {
        i64 c = counts[r], w = c < ngram ? c : ngram, m = offsets[r + 1] - offsets[r];
        u64 *o = out + offsets[r];
        const u64 *t = tok + t0;
        for (i64 s = 0; s < m; s++) {
            u64 acc = t[s];
            for (i64 j = 1; j < w; j++) acc = acc * M + t[s + j];
            o[s] = fmix64(acc + (u64)w);
        }
        t0 += c;
    }
}

/* ----------------------------------------------------------------- MinHash --- */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define MULTIVERSION
#endif

/* datasketch affine32: h = fmix32(low 32 bits), v = a*h + b mod 2^32, minimum per permutation.
 * out: n x p, filled here. */
MULTIVERSION
void pa_minhash(const u64 *hashes, const i64 *offsets, i64 n, const u32 *a, const u32 *b, i64 p, u32 *out) {
    for (i64 r = 0; r < n; r++) {
        u32 *row = out + r * p;
        for (i64 j = 0; j < p; j++) row[j] = 0xFFFFFFFFu;
        for (i64 i = offsets[r]; i < offsets[r + 1]; i++) {
            u32 h = (u32)hashes[i];
            h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
            for (i64 j = 0; j < p; j++) {
                u32 v = a[j] * h + b[j];
                row[j] = v < row[j] ? v : row[j];
            }
        }
    }
}

/* -------------------------------------------------------------- sorting ---- */
/* Stable LSD radix sort of u64 keys (with u32 payload if items != NULL), 8 passes of
 * 8 bits, skipping passes where every key has the same digit. Result in keys/items. */
static void radix8(u64 *keys, u32 *items, i64 n, u64 *kt, u32 *it) {
    i64 count[257];
    u64 *k1 = keys, *k2 = kt;
    u32 *i1 = items, *i2 = it;
    for (int pass = 0; pass < 8; pass++) {
        int sh = 8 * pass;
        memset(count, 0, sizeof(count));
        for (i64 i = 0; i < n; i++) count[((k1[i] >> sh) & 0xFF) + 1]++;
        int trivial = 0;
        for (int d = 0; d < 256; d++) { if (count[d + 1] == n) trivial = 1; count[d + 1] += count[d]; }
        if (trivial) continue;
        for (i64 i = 0; i < n; i++) {
            i64 pos = count[(k1[i] >> sh) & 0xFF]++;
            k2[pos] = k1[i];
            if (i1) i2[pos] = i1[i];
        }
        u64 *tk = k1; k1 = k2; k2 = tk;
        u32 *ti = i1; i1 = i2; i2 = ti;
    }
    if (k1 != keys) { memcpy(keys, k1, n * sizeof(u64)); if (items) memcpy(items, i1, n * sizeof(u32)); }
}

/* Stable sort of (key, item) pairs by key, in place; kt/it: scratch of n elements.
 * One counting pass on the top bits (keys are hashes: buckets of a handful), then each
 * bucket sorted alone: insertion sort when small, LSD radix when large (skewed keys). */
void pa_sort_pairs(u64 *keys, u32 *items, i64 n, u64 *kt, u32 *it) {
    if (n < 2) return;
    int bits = 1;
    while (bits < 20 && ((i64)1 << (bits + 2)) < n) bits++;
    const int shift = 64 - bits;
    const i64 nb = (i64)1 << bits;
    i64 *start = (i64 *)calloc(nb + 1, sizeof(i64));
    for (i64 i = 0; i < n; i++) start[(keys[i] >> shift) + 1]++;
    for (i64 d = 0; d < nb; d++) start[d + 1] += start[d];
    for (i64 i = 0; i < n; i++) {
        i64 pos = start[keys[i] >> shift]++;
        kt[pos] = keys[i];
        it[pos] = items[i];
    }
    /* start[d] is now the end of bucket d */
    i64 lo = 0;
    for (i64 d = 0; d < nb; d++) {
        i64 hi = start[d], m = hi - lo;
        if (m > 48) {
            radix8(kt + lo, it + lo, m, keys + lo, items + lo);  /* keys/items as scratch */
        } else {
            for (i64 i = lo + 1; i < hi; i++) {
                u64 k = kt[i];
                u32 v = it[i];
                i64 j = i;
                while (j > lo && kt[j - 1] > k) { kt[j] = kt[j - 1]; it[j] = it[j - 1]; j--; }
                kt[j] = k;
                it[j] = v;
            }
        }
        lo = hi;
    }
    memcpy(keys, kt, n * sizeof(u64));
    memcpy(items, it, n * sizeof(u32));
    free(start);
}

/* LSH band keys: key[r, i] = fmix64(((i * SALT) * M + s[i*rows]) * M + ... ), wrapping u64. */
void pa_band_keys(const u32 *sigs, i64 n, i64 num_perm, i64 bands, i64 rows, u64 *out) {
    const u64 M = 0x9E3779B97F4A7C15ULL, SALT = 0xD6E8FEB86659FD93ULL;
    for (i64 r = 0; r < n; r++) {
        const u32 *s = sigs + r * num_perm;
        for (i64 i = 0; i < bands; i++) {
            u64 acc = (u64)i * SALT;
            for (i64 j = i * rows; j < (i + 1) * rows; j++) acc = acc * M + s[j];
            out[r * bands + i] = fmix64(acc);
        }
    }
}

static void sort_distinct(u64 *v, i64 *m, u64 *tmp) {  /* sort v[0:*m] ascending, drop repeats */
    i64 n = *m;
    if (n > 64) {
        radix8(v, NULL, n, tmp, NULL);
    } else {
        for (i64 i = 1; i < n; i++) {
            u64 x = v[i];
            i64 j = i;
            while (j > 0 && v[j - 1] > x) { v[j] = v[j - 1]; j--; }
            v[j] = x;
        }
    }
    i64 w = 0;
    for (i64 i = 0; i < n; i++)
        if (i == 0 || v[i] != v[w - 1]) v[w++] = v[i];
    *m = w;
}

/* Per record, the distinct hashes ascending. out: room for all hashes; new_offsets: n+1.
 * Returns the number written. */
i64 pa_unique_sorted(const u64 *hashes, const i64 *offsets, i64 n, u64 *out, i64 *new_offsets) {
    i64 k = 0, cap = 0;
    u64 *scratch = NULL;
    new_offsets[0] = 0;
    for (i64 r = 0; r < n; r++) {
        i64 lo = offsets[r], m = offsets[r + 1] - lo;
        u64 *o = out + k;
        memcpy(o, hashes + lo, m * sizeof(u64));
        if (m > 64 && m > cap) { free(scratch); cap = 2 * m; scratch = (u64 *)malloc(cap * sizeof(u64)); }
        sort_distinct(o, &m, scratch);
        k += m;
        new_offsets[r + 1] = k;
    }
    free(scratch);
    return k;
}

/* ----------------------------------------------------------------- lookup --- */
static inline i64 lower(const u64 *keys, i64 lo, i64 hi, u64 q) {
    while (lo < hi) {
        i64 mid = (lo + hi) >> 1;
        if (keys[mid] < q) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* End of the run of keys equal to keys[lo] == q that starts at lo (end: the bucket's end): galloping,
 * so that a key shared by thousands of items costs a few comparisons, not a scan of its run. */
static inline i64 run_end(const u64 *keys, i64 lo, i64 end, u64 q) {
    if (lo >= end || keys[lo] != q) return lo;
    i64 step = 1, a = lo + 1;
    while (a + step <= end && keys[a + step - 1] == q) { a += step; step <<= 1; }
    i64 b = a + step < end ? a + step : end;  /* keys[a - 1] == q; the run ends in [a, b] */
    while (a < b) {
        i64 mid = (a + b) >> 1;
        if (keys[mid] == q) a = mid + 1; else b = mid;
    }
    return a;
}

/* searchsorted(keys, q, left/right) through a directory on the keys' top bits. */
void pa_probe(const u64 *keys, const i64 *dir, int shift, const u64 *q, i64 nq, i64 *lo_out, i64 *hi_out) {
    for (i64 i = 0; i < nq; i++) {
        u64 j = q[i] >> shift;
        i64 end = dir[j + 1], lo = lower(keys, dir[j], end, q[i]), k = run_end(keys, lo, end, q[i]);
        lo_out[i] = lo;
        hi_out[i] = k;
    }
}

/* Like pa_probe, only for the queries found: (position, lo, hi). Returns the count. */
i64 pa_probe_hits(const u64 *keys, const i64 *dir, int shift, const u64 *q, i64 nq, i64 *qi, i64 *lo_out, i64 *hi_out) {
    i64 n = 0;
    for (i64 i = 0; i < nq; i++) {
        u64 j = q[i] >> shift;
        i64 end = dir[j + 1], lo = lower(keys, dir[j], end, q[i]), k = run_end(keys, lo, end, q[i]);
        if (k > lo) { qi[n] = i; lo_out[n] = lo; hi_out[n] = k; n++; }
    }
    return n;
}

/* Anchor counting: per record, how many of its distinct anchor keys each item shares.
 *
 * Hits are distinct (record, key) pairs, each list sorted by record:
 *   short hits h: postings src[starts[h]:ends[h]], every item counted;
 *   dependent hits: postings dsrc[dstarts[d]:dends[d]] (the long anchors of the items that may have
 *     all their hits in long keys), counted, and their items marked as fully counted;
 *   long hits: postings src[lstarts[g]:lends[g]] (items ascending within a key), not expanded: an item
 *     met in short postings, not marked, whose count reaches need[item] (the short hits it needs
 *     before its long anchors can bring it to its threshold) is searched in each of its record's
 *     long postings (binary search) and each found adds one.
 * Emits (record, item, count) for every item with count >= t_cut or low[(item + base) & mask] set,
 * by record then item. An item not searched cannot reach its threshold (its count is below need);
 * an item with no short hit and not dependent (need > 0) neither. need: NULL to search every item met;
 * need_le1: bit i (LSB first) set when need[i] <= 1.
 * slot_item/slot_count: scratch of cap (a power of two >= 2, and >= 2 * min(the most counted postings
 * of one record, n_items)) entries, zeroed; left zeroed on success. scratch: 2 * cap u64.
 * out_*: room for every counted posting.
 * Returns the pairs emitted; -1 if a range lies outside its source or cap is too small, -2 if an item
 * is >= n_items (values come from an untrusted index: checked before they index anything). */
static void sort_u64(u64 *v, i64 n, u64 *tmp) {  /* ascending; tmp: n elements */
    if (n > 64) {
        radix8(v, NULL, n, tmp, NULL);
        return;
    }
    for (i64 i = 1; i < n; i++) {
        u64 x = v[i];
        i64 j = i;
        while (j > 0 && v[j - 1] > x) { v[j] = v[j - 1]; j--; }
        v[j] = x;
    }
}

/* slot_count: bits 0-15 the short and dependent postings' count, 16-29 the long ones', 30 eligible, 31 dependent */
#define PA_DEP 0x80000000u
#define PA_ELIGIBLE 0x40000000u
#define PA_SHORT 0xFFFFu
#define PA_LONG1 0x10000u
static i64 count_range(const u32 *src, i64 a, i64 b, i64 n_items, u32 mark, u32 *slot_item, u32 *slot_count,
                       i64 cap, int bits, u64 *scratch, i64 distinct) {
    for (i64 k = a; k < b; k++) {
        u32 it = src[k];
        if ((i64)it >= n_items) return -2;
        u64 slot = ((u64)it * 0x9E3779B97F4A7C15ULL) >> (64 - bits);
        while (slot_count[slot] && slot_item[slot] != it) slot = (slot + 1) & (u64)(cap - 1);
        if (!slot_count[slot]) { slot_item[slot] = it; scratch[distinct++] = slot; }
        slot_count[slot] = (slot_count[slot] + 1) | mark;
    }
    return distinct;
}

i64 pa_anchor_counts(const i64 *rec, const i64 *starts, const i64 *ends, i64 n_hits, const u32 *src, i64 n_src,
                     const i64 *drec, const i64 *dstarts, const i64 *dends, i64 n_dhits, const u32 *dsrc,
                     i64 n_dsrc, const i64 *lrec, const i64 *lstarts, const i64 *lends, i64 n_lhits,
                     const uint8_t *need, const uint8_t *need_le1, i64 n_items, i64 t_cut, const uint8_t *low, i64 mask, i64 base,
                     u32 *slot_item, u32 *slot_count, i64 cap, u64 *scratch, i64 *out_rec, i64 *out_item,
                     i64 *out_count) {
    i64 n_out = 0, h = 0, d = 0, g = 0;
    int bits = 0;
    if (cap < 2 || (cap & (cap - 1))) return -1;
    while (((i64)1 << bits) < cap) bits++;
    for (i64 i = 0; i < n_hits; i++) if (starts[i] < 0 || ends[i] < starts[i] || ends[i] > n_src) return -1;
    for (i64 i = 0; i < n_dhits; i++) if (dstarts[i] < 0 || dends[i] < dstarts[i] || dends[i] > n_dsrc) return -1;
    for (i64 i = 0; i < n_lhits; i++) if (lstarts[i] < 0 || lends[i] < lstarts[i] || lends[i] > n_src) return -1;
    while (h < n_hits || d < n_dhits) {
        i64 r = h < n_hits ? rec[h] : drec[d];
        if (d < n_dhits && drec[d] < r) r = drec[d];
        i64 h0 = h, d0 = d, total = 0;
        while (h < n_hits && rec[h] == r) { total += ends[h] - starts[h]; h++; }
        while (d < n_dhits && drec[d] == r) { total += dends[d] - dstarts[d]; d++; }
        while (g < n_lhits && lrec[g] < r) g++;
        i64 g0 = g;
        while (g < n_lhits && lrec[g] == r) g++;
        if (2 * (total < n_items ? total : n_items) > cap) return -1;
        i64 distinct = 0;  /* distinct items of this record, listed in scratch as slot numbers */
        for (i64 k = h0; k < h && distinct >= 0; k++)
            distinct = count_range(src, starts[k], ends[k], n_items, 0, slot_item, slot_count, cap, bits, scratch,
                                   distinct);
        for (i64 k = d0; k < d && distinct >= 0; k++)
            distinct = count_range(dsrc, dstarts[k], dends[k], n_items, PA_DEP, slot_item, slot_count, cap, bits,
                                   scratch, distinct);
        if (distinct < 0) return distinct;
        /* items to complete from the long postings: met in short ones, not dependent here, need reached */
        i64 eligible = 0, long_total = 0;
        if (g > g0) {
            for (i64 e = 0; e < distinct; e++) {
                u64 slot = scratch[e];
                u32 raw = slot_count[slot];
                u32 c = raw & PA_SHORT, it = slot_item[slot];
                /* most items are met once: their test reads one bit of need_le1 (need <= 1), a table 8x
                 * smaller than need, so that it stays in cache */
                if (!(raw & PA_DEP) && (need == NULL || (c == 1 ? (need_le1[it >> 3] >> (it & 7)) & 1 : c >= need[it]))) {
                    slot_count[slot] = raw | PA_ELIGIBLE;
                    eligible++;
                }
            }
            for (i64 k = g0; k < g; k++) long_total += lends[k] - lstarts[k];
        }
        if (eligible && eligible * 8 < long_total) {
            /* few items: sorted, then searched in each long key's postings (items ascending) from where the
             * previous item was found, galloping: sequential reads of each posting list */
            u64 *want = scratch + distinct;
            i64 w = 0;
            for (i64 e = 0; e < distinct; e++)
                if (slot_count[scratch[e]] & PA_ELIGIBLE) want[w++] = ((u64)slot_item[scratch[e]] << 32) | scratch[e];
            sort_u64(want, w, want + w);
            for (i64 k = g0; k < g; k++) {
                i64 pos = lstarts[k], end = lends[k];
                for (i64 e = 0; e < w && pos < end; e++) {
                    u32 it = (u32)(want[e] >> 32);
                    i64 step = 1;
                    while (pos + step < end && src[pos + step - 1] < it) { pos += step; step <<= 1; }
                    i64 hi = pos + step < end ? pos + step : end;
                    while (pos < hi) {
                        i64 mid = pos + (hi - pos) / 2;
                        if (src[mid] < it) pos = mid + 1; else hi = mid;
                    }
                    if (pos < end && src[pos] == it) slot_count[want[e] & 0xFFFFFFFFu] += PA_LONG1;
                }
            }
        } else if (eligible) {  /* many: read the long postings once, counting the items already in the table */
            for (i64 k = g0; k < g; k++) {
                for (i64 j = lstarts[k]; j < lends[k]; j++) {
                    u32 it = src[j];
                    u64 slot = ((u64)it * 0x9E3779B97F4A7C15ULL) >> (64 - bits);
                    while (slot_count[slot] && slot_item[slot] != it) slot = (slot + 1) & (u64)(cap - 1);
                    if (slot_count[slot] & PA_ELIGIBLE) slot_count[slot] += PA_LONG1;
                }
            }
        }
        i64 emitted = 0;
        for (i64 e = 0; e < distinct; e++) {
            u64 slot = scratch[e];
            u32 it = slot_item[slot], raw = slot_count[slot];
            u32 c = (raw & PA_SHORT) + ((raw >> 16) & 0x3FFFu);
            int is_low = low[((i64)it + base) & mask] != 0;
            slot_count[slot] = 0;
            if ((i64)c >= t_cut || is_low) scratch[emitted++] = ((u64)it << 32) | c;
        }
        sort_u64(scratch, emitted, scratch + emitted);
        for (i64 e = 0; e < emitted; e++) {
            out_rec[n_out] = r;
            out_item[n_out] = (i64)(scratch[e] >> 32);
            out_count[n_out] = (i64)(scratch[e] & 0xFFFFFFFFu);
            n_out++;
        }
    }
    return n_out;
}

/* ---------------------------------------------------------------- evidence --- */
static i64 bsearch_u64(const u64 *a, i64 n, u64 q) {  /* position of q in sorted a, or -1 */
    i64 lo = lower(a, 0, n, q);
    return lo < n && a[lo] == q ? lo : -1;
}


/* |distinct(ref seq of item) & target set of rec| for each (rec, item) pair.
 * t_hashes/t_off: sorted distinct target sets; r_hashes/r_off: reference sequences (text order).
 * scratch: 2 * (longest reference sequence) u64. */
void pa_overlap(const u64 *t_hashes, const i64 *t_off, const i64 *recs, const u64 *r_hashes, const i64 *r_off,
                const i64 *items, i64 n_pairs, i64 *out, u64 *scratch, i64 scratch_len) {
    for (i64 p = 0; p < n_pairs; p++) {
        i64 lo = r_off[items[p]], m = r_off[items[p] + 1] - lo;
        u64 *v = scratch;
        memcpy(v, r_hashes + lo, m * sizeof(u64));
        sort_distinct(v, &m, scratch + scratch_len / 2);
        const u64 *t = t_hashes + t_off[recs[p]];
        i64 tn = t_off[recs[p] + 1] - t_off[recs[p]], c = 0;
        /* merge-count when sizes are close, binary search when the target set is much larger */
        if (tn > 16 * m) {
            for (i64 i = 0; i < m; i++) c += bsearch_u64(t, tn, v[i]) >= 0;
        } else {
            i64 i = 0, j = 0;
            while (i < m && j < tn) {
                if (v[i] < t[j]) i++;
                else if (v[i] > t[j]) j++;
                else { c++; i++; j++; }
            }
        }
        out[p] = c;
    }
}

/* Tokens of a record (shingle sequence seq, n_tokens tokens) inside shingles found in the
 * sorted set `matched`; a shingle at i covers tokens i .. i+width-1. */
i64 pa_covered_tokens(const u64 *seq, i64 m, const u64 *matched, i64 nm, i64 n_tokens, i64 width) {
    i64 covered = 0, reach = 0;
    for (i64 i = 0; i < m; i++) {
        if (bsearch_u64(matched, nm, seq[i]) < 0) continue;
        i64 start = i > reach ? i : reach, end = i + width;
        if (end > n_tokens) end = n_tokens;
        if (end > start) { covered += end - start; reach = end; }
    }
    return covered;
}

typedef struct { u64 v; i64 pos; } vp;
static int cmp_vp(const void *x, const void *y) {
    const vp *a = (const vp *)x, *b = (const vp *)y;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->pos < b->pos ? -1 : (a->pos > b->pos);
}

/* Longest run of consecutive equal elements shared by sequences a and b (work: 3*na i64). */
i64 pa_longest_common_run(const u64 *a, i64 na, const u64 *b, i64 nb, i64 *work) {
    if (na == 0 || nb == 0) return 0;
    vp *s = (vp *)malloc(na * sizeof(vp));
    for (i64 i = 0; i < na; i++) { s[i].v = a[i]; s[i].pos = i; }
    qsort(s, na, sizeof(vp), cmp_vp);
    i64 *last_j = work, *len_at = work + na;
    for (i64 i = 0; i < na; i++) last_j[i] = -2;
    i64 best = 0;
    for (i64 j = 0; j < nb; j++) {
        i64 lo = 0, hi = na;  /* first entry with value >= b[j] */
        while (lo < hi) { i64 mid = (lo + hi) >> 1; if (s[mid].v < b[j]) lo = mid + 1; else hi = mid; }
        i64 end = lo;
        while (end < na && s[end].v == b[j]) end++;
        for (i64 k = end - 1; k >= lo; k--) {  /* decreasing i: read i-1's state from column j-1 */
            i64 i = s[k].pos, L = (i > 0 && last_j[i - 1] == j - 1) ? len_at[i - 1] + 1 : 1;
            last_j[i] = j;
            len_at[i] = L;
            if (L > best) best = L;
        }
    }
    free(s);
    return best;
}

/* Directory of sorted keys on their top bits: dir[j] = first i with (keys[i] >> shift) >= j. */
void pa_directory(const u64 *keys, i64 n, int shift, i64 nb, i64 *dir) {
    i64 j = 0;
    for (i64 i = 0; i < n; i++) {
        i64 b = (i64)(keys[i] >> shift);
        while (j <= b) dir[j++] = i;
    }
    while (j <= nb) dir[j++] = n;
}

/* For sorted keys: flag every position whose key occurs more than max_run times. */
void pa_long_runs(const u64 *keys, i64 n, i64 max_run, uint8_t *out) {
    i64 lo = 0;
    while (lo < n) {
        i64 hi = lo + 1;
        while (hi < n && keys[hi] == keys[lo]) hi++;
        memset(out + lo, hi - lo > max_run, hi - lo);
        lo = hi;
    }
}
