/*
 * test_shapes_eval.c — the shapes scorer (eval/shapes_eval.h) against the world's own
 * definition: ground truth drawn by tools/shapes/world.py and blurred by PIL at radius 0.8,
 * 1.0 and 1.5 (tools/shapes/make_eval_fixtures.py -> tests/fixtures/shapes/). world.py is
 * the reference for this one scorer: it defines the world (how shapes are drawn, what a
 * caption means) and was written apart from the C code.
 *   - every drawn object is found with its shape, colour, size and cell: >= 99 % of them,
 *     sharp and at every blur (the old scorer called blurred small squares circles); and
 *     most of them through the demo's own VAE (diffusers round trip, tests/fixtures/shapes/vae);
 *   - the images score >= 99 % strict against their own captions, far lower against another
 *     image's;
 *   - counts mean what the world's captions mean: "a red circle" is exactly one;
 *   - phrases and objects are matched one to one, extra objects are reported;
 *   - a word outside the grammar is an error naming it.
 */
#include "eval/shapes_eval.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { N_IMAGES = 200 };
static const char *const image_sets[] = {"images", "blur0.8", "blur1.0", "blur1.5", "vae"};
enum { N_SETS = 5, VAE_SET = 4 };
/* Required shares: the world's shapes and Gaussian blurs of them are all told apart; through
 * the demo's VAE small circles come out flat-bottomed, between circle and square, so there the
 * bar is what was measured (2026-11-28) less a margin. */
static const double need_found[N_SETS] = {0.99, 0.99, 0.99, 0.99, 0.88};
static const double need_strict[N_SETS] = {0.99, 0.99, 0.99, 0.99, 0.80};

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

/* The N_IMAGES lines of a caption file (lines[0] owns the text). */
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
    CHECK(p.items[0].count == 2 && p.items[0].size == SIZE_SMALL, "two small");
    CHECK(p.items[0].colour == 0 && p.items[0].shape == SHAPE_CIRCLE && p.items[0].cell == -1, "red circles");
    CHECK(p.items[1].colour == 5 && p.items[1].shape == SHAPE_TRIANGLE && p.items[1].count == 1, "orange triangle");
    CHECK(p.items[2].shape == SHAPE_SQUARE && p.items[2].colour == -1 && p.items[2].cell == 0, "square top left");
    CHECK_OK(shapes_parse_prompt("A large blue square in the center, a small green circle in the bottom center, "
                                 "on a white background.", &p));
    CHECK(p.count == 2 && p.items[0].cell == 4 && p.items[0].size == SIZE_LARGE && p.items[1].cell == 7,
          "descriptive caption: %d phrases", p.count);
    /* Unknown words are errors naming the word (the old scorer dropped them silently and
     * scored "a red hexagon" as "a red"...). */
    CHECK(shapes_parse_prompt("a photo of a cat", &p) == -1, "a prompt outside the grammar is refused");
    CHECK(strstr(ts_last_error(), "'photo'") != NULL, "the error names the word: %s", ts_last_error());
    CHECK(shapes_parse_prompt("a red circle and a shiny blue square", &p) == -1, "'shiny' is refused");
    CHECK(strstr(ts_last_error(), "'shiny'") != NULL, "the error names the word: %s", ts_last_error());
    CHECK(shapes_parse_prompt("two red squares in the top left", &p) == -1, "two objects in one cell are refused");
    CHECK(shapes_parse_prompt("a large red", &p) == -1, "a phrase without a shape is refused");
}

static void test_blank(void) {
    uint8_t white[48 * 48 * 3];
    memset(white, 255, sizeof white);
    shapes_scene s;
    CHECK_OK(shapes_detect(white, 48, 48, &s));
    CHECK(s.count == 0, "a white image has %d shapes", s.count);
    shapes_prompt p;
    shapes_verdict v;
    CHECK_OK(shapes_parse_prompt("a red circle", &p));
    shapes_judge(&p, &s, &v);
    CHECK(!v.strict && !v.lenient, "a white image does not show a red circle");
    CHECK(shapes_detect(white, 2, 2, &s) == -1, "a 2x2 image is refused");
}

static shapes_object obj(int shape, int colour, int size, int cell) {
    return (shapes_object){.shape = shape, .colour = colour, .size = size, .cell = cell};
}

/* Judging on scenes given directly: the meaning of counts, one-to-one matching, extras. */
static void test_judge(void) {
    enum { RED, GREEN, BLUE };
    shapes_prompt p;
    shapes_verdict v;
    shapes_scene two_red = {.count = 2, .objects = {obj(SHAPE_CIRCLE, RED, SIZE_SMALL, 0), obj(SHAPE_CIRCLE, RED, SIZE_LARGE, 4)}};
    CHECK_OK(shapes_parse_prompt("a red circle", &p));
    shapes_judge(&p, &two_red, &v);
    CHECK(!v.strict && v.lenient, "two red circles are not 'a red circle' (world.py would say 'two red circles')");
    CHECK(v.extra == 1, "the second red circle is extra: %d", v.extra);

    shapes_scene circle_square = {.count = 2, .objects = {obj(SHAPE_CIRCLE, RED, SIZE_SMALL, 0), obj(SHAPE_SQUARE, BLUE, SIZE_LARGE, 8)}};
    shapes_judge(&p, &circle_square, &v);
    CHECK(v.strict && v.lenient, "an unnamed blue square does not spoil 'a red circle'");
    CHECK(v.extra == 1, "the square is reported as extra: %d", v.extra);

    /* One to one: a single red circle cannot be both phrases' object. */
    shapes_scene one_red = {.count = 1, .objects = {obj(SHAPE_CIRCLE, RED, SIZE_SMALL, 0)}};
    CHECK_OK(shapes_parse_prompt("a circle and a red circle", &p));
    shapes_judge(&p, &one_red, &v);
    CHECK(!v.lenient && !v.strict, "one object for two phrases");
    CHECK(v.passed[ATTR_OBJECT] == 1 && v.total[ATTR_OBJECT] == 2, "object %d/%d", v.passed[ATTR_OBJECT],
          v.total[ATTR_OBJECT]);

    /* The best assignment, not the first fit: taken in order, "a circle" would grab the red
     * one (listed first) and leave "a red circle" with the green. */
    shapes_scene red_green = {.count = 2, .objects = {obj(SHAPE_CIRCLE, RED, SIZE_SMALL, 0), obj(SHAPE_CIRCLE, GREEN, SIZE_SMALL, 2)}};
    CHECK_OK(shapes_parse_prompt("a circle and a red circle", &p));
    shapes_judge(&p, &red_green, &v);
    CHECK(v.lenient && v.matched[0] == 1 && v.matched[1] == 0, "matched %d %d", v.matched[0], v.matched[1]);
    CHECK(!v.strict, "strict: 'a circle' is exactly one circle, and there are two");
    CHECK_OK(shapes_parse_prompt("a small circle in the top left, a red circle", &p));
    shapes_judge(&p, &red_green, &v);
    CHECK(!v.strict && !v.lenient, "only one object fits both phrases");

    /* Colour binding: the shape check is the matched object's, not any object's. */
    shapes_scene swapped = {.count = 2, .objects = {obj(SHAPE_CIRCLE, BLUE, SIZE_SMALL, 0), obj(SHAPE_SQUARE, RED, SIZE_SMALL, 8)}};
    CHECK_OK(shapes_parse_prompt("a red circle and a blue square", &p));
    shapes_judge(&p, &swapped, &v);
    CHECK(!v.lenient && !v.strict, "colours swapped between the shapes");
    CHECK(v.passed[ATTR_SHAPE] + v.passed[ATTR_COLOUR] == 2, "each matched object satisfies one of two: %d",
          v.passed[ATTR_SHAPE] + v.passed[ATTR_COLOUR]);

    /* Counts: "two" is exactly two. */
    shapes_scene three = {.count = 3, .objects = {obj(SHAPE_SQUARE, RED, SIZE_SMALL, 0), obj(SHAPE_SQUARE, RED, SIZE_SMALL, 1),
                                                  obj(SHAPE_SQUARE, RED, SIZE_SMALL, 2)}};
    CHECK_OK(shapes_parse_prompt("two red squares", &p));
    shapes_judge(&p, &three, &v);
    CHECK(!v.strict && v.lenient && v.passed[ATTR_COUNT] == 0, "three red squares are not two");
    CHECK_OK(shapes_parse_prompt("three red squares", &p));
    shapes_judge(&p, &three, &v);
    CHECK(v.strict && v.extra == 0, "three red squares");
}

/* Every ground-truth object of one image set found with all four attributes, nothing extra. */
static void test_detection(int set_index, shapes_scene *scenes) {
    const char *set = image_sets[set_index];
    char *json = slurp(fixture_path("shapes/scenes.json"));
    CHECK(json != NULL, "missing %s", fixture_path("shapes/scenes.json"));
    if (!json) return;
    cJSON *root = cJSON_Parse(json);
    static const char *const shapes[] = {"circle", "square", "triangle"};
    static const char *const colours[] = {"red", "green", "blue", "yellow", "purple", "orange"};
    static const char *const sizes[] = {"small", "large"};
    int objects = 0, found = 0, extra = 0, shape_right = 0, squares = 0, squares_as_circles = 0;
    for (int i = 0; i < N_IMAGES; i++) {
        cJSON *scene = cJSON_GetArrayItem(root, i), *o;
        int truth = cJSON_GetArraySize(scene);
        extra += scenes[i].count != truth;
        cJSON_ArrayForEach(o, scene) {
            int shape = index_of(cJSON_GetObjectItem(o, "shape")->valuestring, shapes, 3);
            int colour = index_of(cJSON_GetObjectItem(o, "colour")->valuestring, colours, 6);
            int size = index_of(cJSON_GetObjectItem(o, "size")->valuestring, sizes, 2);
            int cell = cJSON_GetObjectItem(o, "cell")->valueint;
            objects++;
            squares += shape == SHAPE_SQUARE;
            for (int k = 0; k < scenes[i].count; k++) {
                const shapes_object *d = &scenes[i].objects[k];
                if (d->cell != cell) continue;
                shape_right += d->shape == shape;
                squares_as_circles += shape == SHAPE_SQUARE && d->shape == SHAPE_CIRCLE;
                found += d->shape == shape && d->colour == colour && d->size == size;
                break;
            }
        }
    }
    printf("%-8s detection: %d of %d objects found exactly, shape right for %d (%.1f%%), %d of %d squares called "
           "circles, %d images with a wrong object count\n", set, found, objects, shape_right,
           100.0 * shape_right / objects, squares_as_circles, squares, extra);
    CHECK(found >= need_found[set_index] * objects, "%s: found %d of %d objects", set, found, objects);
    CHECK(shape_right >= need_found[set_index] * objects, "%s: shape right for %d of %d objects", set, shape_right, objects);
    CHECK(extra <= N_IMAGES / 100, "%s: %d images with a wrong object count", set, extra);
    cJSON_Delete(root);
    free(json);
}

/* Scores the images against the captions in file, image i with caption (i + shift) % N. */
static shapes_score score_with(shapes_scene *scenes, const char *file, int shift) {
    shapes_score score = {0};
    char **lines = lines_of(fixture_path(file));
    CHECK(lines != NULL, "missing %s", fixture_path(file));
    if (!lines) return score;
    for (int i = 0; i < N_IMAGES; i++) {
        shapes_prompt p;
        shapes_verdict v;
        const char *caption = lines[(i + shift) % N_IMAGES];
        CHECK(caption && shapes_parse_prompt(caption, &p) == 0, "caption %d: %s", i, ts_last_error());
        if (!caption) continue;
        shapes_judge(&p, &scenes[i], &v);
        shapes_score_add(&score, &v);
    }
    free(lines[0]);
    free(lines);
    return score;
}

static double strict_of(const shapes_score *s) { return s->prompts ? (double)s->strict_correct / s->prompts : 0; }

int main(void) {
    TEST_BEGIN();
    test_parse();
    test_blank();
    test_judge();
    static shapes_scene scenes[N_SETS][N_IMAGES];
    for (int set = 0; set < N_SETS; set++) {
        for (int i = 0; i < N_IMAGES; i++) {
            char rel[64];
            snprintf(rel, sizeof rel, "shapes/%s/%05d.png", image_sets[set], i);
            CHECK_OK(shapes_detect_png(fixture_path(rel), &scenes[set][i]));
        }
        test_detection(set, scenes[set]);
        shapes_score desc = score_with(scenes[set], "shapes/descriptive.txt", 0);
        shapes_score shrt = score_with(scenes[set], "shapes/short.txt", 0);
        printf("%-8s vs own captions, strict: descriptive %.1f%%, short %.1f%% (lenient %.1f%%, %.1f%%)\n",
               image_sets[set], 100 * strict_of(&desc), 100 * strict_of(&shrt),
               100.0 * desc.lenient_correct / desc.prompts, 100.0 * shrt.lenient_correct / shrt.prompts);
        CHECK(strict_of(&desc) >= need_strict[set], "%s: descriptive strict %.3f", image_sets[set], strict_of(&desc));
        CHECK(strict_of(&shrt) >= need_strict[set], "%s: short strict %.3f", image_sets[set], strict_of(&shrt));
        if (set == 0) {
            CHECK(desc.total[ATTR_POSITION] > 0 && desc.total[ATTR_SIZE] > 0 && desc.total[ATTR_COLOUR] > 0,
                  "descriptive captions ask for position, size and colour");
            CHECK(shrt.extra_objects > 0, "short captions leave objects unnamed: %d extra", shrt.extra_objects);
            /* The scorer can fail: another image's captions must score far lower. */
            shapes_score wrong = score_with(scenes[set], "shapes/descriptive.txt", 1);
            shapes_score wrong_short = score_with(scenes[set], "shapes/short.txt", 1);
            printf("ground truth vs the next image's captions, strict: descriptive %.1f%%, short %.1f%% "
                   "(lenient %.1f%%)\n", 100 * strict_of(&wrong), 100 * strict_of(&wrong_short),
                   100.0 * wrong_short.lenient_correct / wrong_short.prompts);
            CHECK(strict_of(&wrong) < 0.05, "mismatched captions score %.3f", strict_of(&wrong));
            CHECK(strict_of(&wrong_short) < 0.2, "mismatched short captions score %.3f", strict_of(&wrong_short));
        }
    }
    return TEST_END();
}
