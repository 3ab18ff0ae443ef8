/*
 * test_shapes_eval.c — the shapes scorer against ground truth rendered by the Python world
 * generator (tools/shapes/make_eval_fixtures.py -> tests/fixtures/shapes/): every object it
 * drew must be found with its shape, colour, size and cell; the scorer must rate the images
 * >= 98 % against their own captions, and far lower against another image's captions; and
 * still >= 97 % on blurred copies (the soft edges of a VAE decoder).
 */
#include "models/shapes_eval.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { N_IMAGES = 200 };

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = ts_malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

/* Line i of a caption file (static buffer). */
static char **lines_of(const char *path) {
    char *text = slurp(path);
    if (!text) return NULL;
    char **lines = ts_calloc(N_IMAGES, sizeof *lines);
    char *save = NULL;
    int i = 0;
    for (char *l = strtok_r(text, "\n", &save); l && i < N_IMAGES; l = strtok_r(NULL, "\n", &save)) lines[i++] = l;
    return lines;
}

static int index_of(const char *name, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

static void test_parse(void) {
    shapes_prompt p;
    CHECK_OK(shapes_parse_prompt("two small red circles, an orange triangle and a square in the top left", &p));
    CHECK(p.count == 3, "%d phrases", p.count);
    CHECK(p.items[0].count == 2 && p.items[0].count_asked && p.items[0].size == SIZE_SMALL, "two small");
    CHECK(p.items[0].colour == 0 && p.items[0].shape == SHAPE_CIRCLE && p.items[0].cell == -1, "red circles");
    CHECK(p.items[1].colour == 5 && p.items[1].shape == SHAPE_TRIANGLE && !p.items[1].count_asked, "orange triangle");
    CHECK(p.items[2].shape == SHAPE_SQUARE && p.items[2].colour == -1 && p.items[2].cell == 0, "square top left");
    CHECK_OK(shapes_parse_prompt("A large blue square in the center, a small green circle in the bottom center, "
                                 "on a white background.", &p));
    CHECK(p.count == 2 && p.items[0].cell == 4 && p.items[0].size == SIZE_LARGE && p.items[1].cell == 7,
          "descriptive caption: %d phrases", p.count);
    CHECK(shapes_parse_prompt("a photo of a cat", &p) == -1, "a prompt with no shape is refused");
    CHECK(strstr(ts_last_error(), "cat") != NULL, "the error names the prompt: %s", ts_last_error());
}

static void test_blank(void) {
    uint8_t white[48 * 48 * 3];
    memset(white, 255, sizeof white);
    shapes_scene s;
    CHECK_OK(shapes_detect(white, 48, 48, &s));
    CHECK(s.count == 0, "a white image has %d shapes", s.count);
    shapes_prompt p;
    shapes_score score = {0};
    CHECK_OK(shapes_parse_prompt("a red circle", &p));
    CHECK(!shapes_score_image(&p, &s, &score), "a white image does not show a red circle");
    CHECK(shapes_detect(white, 2, 2, &s) == -1, "a 2x2 image is refused");
}

/* Every ground-truth object found with all four attributes, and nothing extra. */
static void test_detection(shapes_scene *scenes) {
    char *json = slurp(fixture_path("shapes/scenes.json"));
    CHECK(json != NULL, "missing %s", fixture_path("shapes/scenes.json"));
    if (!json) return;
    cJSON *root = cJSON_Parse(json);
    static const char *const shapes[] = {"circle", "square", "triangle"};
    static const char *const colours[] = {"red", "green", "blue", "yellow", "purple", "orange"};
    static const char *const sizes[] = {"small", "large"};
    int objects = 0, found = 0, extra = 0;
    for (int i = 0; i < N_IMAGES; i++) {
        cJSON *scene = cJSON_GetArrayItem(root, i), *o;
        int truth = cJSON_GetArraySize(scene);
        extra += scenes[i].count > truth;
        cJSON_ArrayForEach(o, scene) {
            int shape = index_of(cJSON_GetObjectItem(o, "shape")->valuestring, shapes, 3);
            int colour = index_of(cJSON_GetObjectItem(o, "colour")->valuestring, colours, 6);
            int size = index_of(cJSON_GetObjectItem(o, "size")->valuestring, sizes, 2);
            int cell = cJSON_GetObjectItem(o, "cell")->valueint;
            objects++;
            for (int k = 0; k < scenes[i].count; k++) {
                const shapes_object *d = &scenes[i].objects[k];
                if (d->shape == shape && d->colour == colour && d->size == size && d->cell == cell) {
                    found++;
                    break;
                }
            }
        }
    }
    printf("detection: %d of %d ground-truth objects found exactly, %d images with extra shapes\n", found, objects,
           extra);
    CHECK(found >= 0.98 * objects, "found %d of %d objects", found, objects);
    CHECK(extra <= N_IMAGES / 50, "%d images with extra shapes", extra);
    cJSON_Delete(root);
    free(json);
}

/* Scores the images against the captions in file, image i with caption (i + shift) % N. */
static double score_with(shapes_scene *scenes, const char *file, int shift, shapes_score *score) {
    char **lines = lines_of(fixture_path(file));
    CHECK(lines != NULL, "missing %s", fixture_path(file));
    if (!lines) return 0;
    memset(score, 0, sizeof *score);
    for (int i = 0; i < N_IMAGES; i++) {
        shapes_prompt p;
        const char *caption = lines[(i + shift) % N_IMAGES];
        CHECK(caption && shapes_parse_prompt(caption, &p) == 0, "caption %d: %s", i, ts_last_error());
        if (caption) shapes_score_image(&p, &scenes[i], score);
    }
    free(lines[0]);
    free(lines);
    return (double)score->prompts_correct / score->prompts;
}

int main(void) {
    TEST_BEGIN();
    test_parse();
    test_blank();
    static shapes_scene scenes[N_IMAGES];
    for (int i = 0; i < N_IMAGES; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "shapes/images/%05d.png", i);
        CHECK_OK(shapes_detect_png(fixture_path(rel), &scenes[i]));
    }
    test_detection(scenes);
    shapes_score score;
    double desc = score_with(scenes, "shapes/descriptive.txt", 0, &score);
    printf("ground truth vs descriptive captions: %.1f%% of prompts, %.1f%% of checks\n", 100 * desc,
           100 * shapes_score_accuracy(&score, ATTR_KINDS));
    CHECK(desc >= 0.98, "descriptive accuracy %.3f", desc);
    CHECK(score.total[ATTR_POSITION] > 0 && score.total[ATTR_SIZE] > 0 && score.total[ATTR_COLOUR] > 0,
          "descriptive captions ask for position, size and colour");
    double shrt = score_with(scenes, "shapes/short.txt", 0, &score);
    printf("ground truth vs short captions: %.1f%% of prompts, %.1f%% of checks\n", 100 * shrt,
           100 * shapes_score_accuracy(&score, ATTR_KINDS));
    CHECK(shrt >= 0.98, "short accuracy %.3f", shrt);
    CHECK(score.total[ATTR_COUNT] > 0, "short captions ask for counts");
    /* The scorer can fail: another image's captions must score far lower. */
    double wrong = score_with(scenes, "shapes/descriptive.txt", 1, &score);
    printf("ground truth vs the next image's descriptive captions: %.1f%%\n", 100 * wrong);
    CHECK(wrong < 0.1, "mismatched captions score %.3f", wrong);
    double wrong_short = score_with(scenes, "shapes/short.txt", 1, &score);
    CHECK(wrong_short < 0.5, "mismatched short captions score %.3f", wrong_short);

    enum { N_BLURRED = 100 };
    shapes_score blurred = {0};
    char **lines = lines_of(fixture_path("shapes/descriptive.txt"));
    CHECK(lines != NULL, "missing descriptive.txt");
    for (int i = 0; lines && i < N_BLURRED; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "shapes/blurred/%05d.png", i);
        shapes_scene s;
        shapes_prompt p;
        CHECK_OK(shapes_detect_png(fixture_path(rel), &s));
        CHECK_OK(shapes_parse_prompt(lines[i], &p));
        shapes_score_image(&p, &s, &blurred);
    }
    if (lines) free(lines[0]), free(lines);
    double blur = (double)blurred.prompts_correct / blurred.prompts;
    printf("blurred ground truth vs descriptive captions: %.1f%% of prompts\n", 100 * blur);
    CHECK(blur >= 0.97, "blurred accuracy %.3f", blur);
    return TEST_END();
}
