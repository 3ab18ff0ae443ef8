/* test_torch_rng.c — torch.randn from a seeded CPU generator, bit for bit
 * (fixtures: tools/gen_sampler_fixtures.py -> tests/fixtures/samplers/randn*.{json,npy}). */
#include "tests/test.h"
#include "models/formats/model_files.h"
#include "models/diffusion/torch_rng.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Number of values whose float bits differ. */
static int64_t bit_mismatches(const float *a, const float *b, int64_t n) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += memcmp(&a[i], &b[i], sizeof(float)) != 0;
    return bad;
}

int main(void) {
    TEST_BEGIN();
    char *text = read_text_file(fixture_path("samplers/randn.json"), NULL);
    CHECK(text != NULL, "%s", ts_last_error());
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    CHECK(cJSON_GetArraySize(cases) >= 8, "randn.json has too few cases");
    int64_t total = 0, total_bad = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        uint64_t seed = strtoull(cJSON_GetObjectItem(c, "seed")->valuestring, NULL, 10);
        bool fresh = cJSON_IsTrue(cJSON_GetObjectItem(c, "fresh"));
        const char *file = cJSON_GetObjectItem(c, "file")->valuestring;
        char rel[256];
        snprintf(rel, sizeof rel, "samplers/%s", file);
        tensor shape;
        float *want = fixture_npy(rel, &shape);
        CHECK(want != NULL, "%s", rel);
        if (!want) continue;
        int64_t offset = 0;
        torch_rng *g = torch_rng_new(seed);
        const cJSON *size;
        cJSON_ArrayForEach(size, cJSON_GetObjectItem(c, "sizes")) {
            int64_t n = (int64_t)size->valuedouble;
            float *got = ts_malloc(sizeof(float) * (size_t)n);
            if (fresh) torch_rng_seed(g, seed);
            torch_rng_randn(g, got, n);
            CHECK(offset + n <= tensor_numel(&shape), "%s: fixture too short", file);
            if (offset + n > tensor_numel(&shape)) { free(got); break; }
            int64_t bad = bit_mismatches(got, want + offset, n);
            CHECK(bad == 0, "seed %llu %s draw of %lld: %lld values differ in their bits (first want %.9g got %.9g)",
                  (unsigned long long)seed, fresh ? "fresh" : "consecutive", (long long)n, (long long)bad,
                  want[offset], got[0]);
            total += n;
            total_bad += bad;
            offset += n;
            free(got);
        }
        CHECK(offset == tensor_numel(&shape), "%s: %lld values used of %lld", file, (long long)offset,
              (long long)tensor_numel(&shape));
        torch_rng_destroy(&g);
        free(want);
    }
    printf("torch.randn parity: %lld values compared, %lld differ in their bits\n", (long long)total,
           (long long)total_bad);

    /* randn_tensor with one generator per image == each image drawn alone */
    torch_rng *gens[2] = {torch_rng_new(8), torch_rng_new(9)};
    float both[2 * 64], alone[64];
    CHECK_OK(torch_rng_randn_tensor(gens, 2, both, 2 * 64));
    torch_rng *g9 = torch_rng_new(9);
    torch_rng_randn(g9, alone, 64);
    CHECK(memcmp(both + 64, alone, sizeof alone) == 0, "per-image generator 1 draws its own stream");
    CHECK(torch_rng_randn_tensor(gens, 2, both, 3) != 0, "an uneven split is refused");
    torch_rng_destroy(&gens[0]);
    torch_rng_destroy(&gens[1]);
    torch_rng_destroy(&g9);

    cJSON_Delete(root);
    free(text);
    return TEST_END();
}
