/* fuzz.h — what the standalone fuzz targets share when built with -DMB_FUZZ_STANDALONE
 * (make test): a fixed-seed random source, a byte mutator with a target's own tokens, the
 * replay of files named on the command line, and the seed-and-mutate loop. Under libFuzzer
 * none of this is compiled; each target only provides LLVMFuzzerTestOneInput. */
#ifndef MOONBUS_TESTS_FUZZ_H
#define MOONBUS_TESTS_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_token {
  const char *p;
  size_t n; /* explicit, so a token may hold a NUL byte */
} fuzz_token;

#define FUZZ_TOKEN(s)                                                                            \
  { s, sizeof s - 1 }

static uint64_t fuzz_rng = 0x9e3779b97f4a7c15ULL;

/* xorshift64: the same sequence on every run, so a failure replays. */
static inline uint32_t fuzz_random(void) {
  fuzz_rng ^= fuzz_rng << 13;
  fuzz_rng ^= fuzz_rng >> 7;
  fuzz_rng ^= fuzz_rng << 17;
  return (uint32_t)fuzz_rng;
}

/* One random edit of buf (len < cap): flip a bit, delete a byte, insert a random byte or
 * one of the target's tokens. */
static inline size_t fuzz_mutate(uint8_t *buf, size_t len, size_t cap, const fuzz_token *tokens,
                                 size_t n_tokens) {
  uint32_t r = fuzz_random(), at = len ? fuzz_random() % len : 0;
  switch (r % 4) {
  case 0:
    if (len) buf[at] ^= (uint8_t)(1u << (fuzz_random() % 8));
    return len;
  case 1:
    if (len) memmove(buf + at, buf + at + 1, len - at - 1);
    return len ? len - 1 : 0;
  case 2:
    if (len + 1 >= cap) return len;
    memmove(buf + at + 1, buf + at, len - at);
    buf[at] = (uint8_t)fuzz_random();
    return len + 1;
  default: {
    const fuzz_token *t = &tokens[fuzz_random() % n_tokens];
    if (len + t->n >= cap) return len;
    memmove(buf + at + t->n, buf + at, len - at);
    memcpy(buf + at, t->p, t->n);
    return len + t->n;
  }
  }
}

/* Runs the target on an exact-size copy, so ASan sees a read past the end. */
static inline void fuzz_run_exact(const uint8_t *buf, size_t len) {
  uint8_t *exact = malloc(len ? len : 1);
  if (exact == NULL) return;
  memcpy(exact, buf, len);
  LLVMFuzzerTestOneInput(exact, len);
  free(exact);
}

/* Replays each file named in argv (a crash libFuzzer found); 1 if there were any. */
static inline int fuzz_replay_args(int argc, char **argv) {
  static uint8_t buf[1 << 21];
  for (int i = 1; i < argc; i++) {
    FILE *f = fopen(argv[i], "rb");
    if (f == NULL) {
      fprintf(stderr, "cannot read %s\n", argv[i]);
      continue;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fuzz_run_exact(buf, n);
  }
  return argc > 1;
}

/* The seed, then `rounds` mutations of it, drifting back to the seed every `drift`
 * rounds. Returns the number of mutated inputs run. */
static inline long fuzz_mutation_loop(const uint8_t *seed, size_t seed_len, int rounds, int drift,
                                      const fuzz_token *tokens, size_t n_tokens) {
  uint8_t buf[512];
  size_t len = seed_len < sizeof buf ? seed_len : sizeof buf - 1;
  memcpy(buf, seed, len);
  fuzz_run_exact(buf, len);
  for (int i = 0; i < rounds; i++) {
    len = fuzz_mutate(buf, len, sizeof buf, tokens, n_tokens);
    fuzz_run_exact(buf, len);
    if (i % drift == drift - 1) {
      len = seed_len < sizeof buf ? seed_len : sizeof buf - 1;
      memcpy(buf, seed, len);
    }
  }
  return rounds;
}

#endif
