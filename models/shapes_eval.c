/*
 * shapes_eval.c — finds the shapes of the demo world in an image, parses a prompt in the
 * world's grammar and scores one against the other (see shapes_eval.h).
 *
 * Hand-written because it is the world's own definition: colour segmentation by nearest
 * palette entry, connected components by flood fill, a silhouette classifier. No general
 * vision library knows this palette or grammar.
 */
#include "models/shapes_eval.h"
#include "models/image_png.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The world's palette (tools/shapes/world.py COLOURS), then the background. */
static const uint8_t palette[SHAPES_COLOURS + 1][3] = {
    {220, 30, 30}, {30, 160, 50}, {30, 60, 220}, {240, 210, 20}, {140, 50, 180}, {245, 130, 20},
    {255, 255, 255},
};
static const char *const colour_names[SHAPES_COLOURS] = {"red", "green", "blue", "yellow", "purple", "orange"};
static const char *const shape_names[SHAPE_KINDS] = {"circle", "square", "triangle"};
static const char *const attr_names[ATTR_KINDS] = {"object", "shape", "colour", "count", "position", "size"};
enum { BACKGROUND = SHAPES_COLOURS };

/* Geometry of the world at its native 48 px: small shapes are 7 px wide, large 13 px. */
#define WORLD_SIZE 48.0f
#define LARGE_FROM 10.0f          /* extent at which a shape counts as large */
#define MIN_AREA 12.0f            /* smaller components are noise */

const char *shapes_attr_name(shapes_attr a) { return a >= 0 && a < ATTR_KINDS ? attr_names[a] : "?"; }
const char *shapes_shape_name(int s) { return s >= 0 && s < SHAPE_KINDS ? shape_names[s] : "?"; }
const char *shapes_colour_name(int c) { return c >= 0 && c < SHAPES_COLOURS ? colour_names[c] : "?"; }

static int nearest_colour(const uint8_t *p) {
    int best = 0, best_d = 1 << 30;
    for (int c = 0; c <= SHAPES_COLOURS; c++) {
        int dr = p[0] - palette[c][0], dg = p[1] - palette[c][1], db = p[2] - palette[c][2];
        int d = dr * dr + dg * dg + db * db;
        if (d < best_d) best_d = d, best = c;
    }
    return best;
}

/* How strongly pixel p shows colour c: 1 at the palette colour, 0 at white (projection on the
 * white -> colour segment), so blurred edges count in part. */
static float strength(const uint8_t *p, int c) {
    float num = 0, den = 0;
    for (int k = 0; k < 3; k++) {
        float d = 255.0f - (float)palette[c][k];
        num += (255.0f - (float)p[k]) * d, den += d * d;
    }
    float s = num / den;
    return s < 0 ? 0 : s > 1 ? 1 : s;
}

/* Silhouette -> shape. A triangle (apex up) has most of its mass in the lower half; a square
 * fills the corners of its bounding box, a circle leaves them empty. Corners are measured
 * with soft strength so that a decoder's blurred square and rounded circle still differ. */
static int classify(const uint8_t *rgb, int width, int colour, int x0, int y0, int w, int h, int top_mass,
                    int bottom_mass) {
    float top_ratio = bottom_mass > 0 ? (float)top_mass / (float)bottom_mass : 1.0f;
    if (top_ratio < 0.6f) return SHAPE_TRIANGLE;
    int k = (w < h ? w : h) / 7;            /* corner patch: 1 px for small shapes, 1-2 for large */
    if (k < 1) k = 1;
    float corners = 0;
    for (int cy = 0; cy < 2; cy++)
        for (int cx = 0; cx < 2; cx++)
            for (int dy = 0; dy < k; dy++)
                for (int dx = 0; dx < k; dx++) {
                    int x = cx ? x0 + w - 1 - dx : x0 + dx, y = cy ? y0 + h - 1 - dy : y0 + dy;
                    corners += strength(rgb + 3 * ((size_t)y * width + x), colour);
                }
    corners /= (float)(4 * k * k);
    return corners > 0.5f ? SHAPE_SQUARE : SHAPE_CIRCLE;
}

int shapes_detect(const uint8_t *rgb, int width, int height, shapes_scene *out) {
    if (width < 3 || height < 3) return ts_fail("shapes_detect: image %dx%d is too small", width, height);
    memset(out, 0, sizeof *out);
    size_t n = (size_t)width * height;
    uint8_t *label = ts_malloc(n);
    int *component = ts_malloc(n * sizeof *component);
    int *stack = ts_malloc(n * sizeof *stack);
    for (size_t i = 0; i < n; i++) label[i] = (uint8_t)nearest_colour(rgb + 3 * i), component[i] = -1;
    float scale = (float)(width < height ? width : height) / WORLD_SIZE;
    int next = 0;
    for (size_t seed = 0; seed < n; seed++) {
        if (label[seed] == BACKGROUND || component[seed] >= 0) continue;
        /* Flood fill the non-background pixels 4-connected to seed. */
        int top = 0, votes[SHAPES_COLOURS] = {0}, area = 0;
        int x0 = width, y0 = height, x1 = -1, y1 = -1;
        stack[top++] = (int)seed;
        component[seed] = next;
        /* A queue that is never popped: when the fill ends, stack[0..top) lists the
         * component's pixels, which the silhouette measures below need. */
        for (int read = 0; read < top; read++) {
            int p = stack[read], x = p % width, y = p / width;
            votes[label[p]]++, area++;
            if (x < x0) x0 = x;
            if (x > x1) x1 = x;
            if (y < y0) y0 = y;
            if (y > y1) y1 = y;
            const int nb[4][2] = {{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}};
            for (int k = 0; k < 4; k++) {
                int nx = nb[k][0], ny = nb[k][1];
                if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
                int q = ny * width + nx;
                if (label[q] == BACKGROUND || component[q] >= 0) continue;
                component[q] = next;
                stack[top++] = q;
            }
        }
        next++;
        if ((float)area < MIN_AREA * scale * scale) continue;
        int w = x1 - x0 + 1, h = y1 - y0 + 1;
        float cy = 0.5f * (float)(y0 + y1);
        int top_mass = 0, bottom_mass = 0;
        for (int i = 0; i < top; i++) {
            float y = (float)(stack[i] / width);
            if (y < cy) top_mass++;
            else if (y > cy) bottom_mass++;
        }
        if (out->count == SHAPES_MAX_OBJECTS) break;
        shapes_object *o = &out->objects[out->count++];
        o->colour = 0;
        for (int c = 1; c < SHAPES_COLOURS; c++)
            if (votes[c] > votes[o->colour]) o->colour = c;
        o->shape = classify(rgb, width, o->colour, x0, y0, w, h, top_mass, bottom_mass);
        o->size = (float)(w > h ? w : h) >= LARGE_FROM * scale ? SIZE_LARGE : SIZE_SMALL;
        o->area = area;
        o->cx = 0.5f * (float)(x0 + x1) + 0.5f;
        o->cy = cy + 0.5f;
        int col = (int)(o->cx * 3.0f / (float)width), row = (int)(o->cy * 3.0f / (float)height);
        o->cell = (row > 2 ? 2 : row) * 3 + (col > 2 ? 2 : col);
    }
    free(label), free(component), free(stack);
    return 0;
}

int shapes_detect_png(const char *path, shapes_scene *out) {
    uint8_t *rgb = NULL;
    int w = 0, h = 0;
    if (image_png_read(path, &rgb, &w, &h, NULL) != 0) return -1;
    int rc = shapes_detect(rgb, w, h, out);
    free(rgb);
    return rc < 0 ? ts_fail_wrap("%s", path) : 0;
}

/* ---- prompts ---------------------------------------------------------------------- */

static int word_index(const char *w, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(w, names[i]) == 0) return i;
    return -1;
}

/* One phrase ("two small red circles in the top left"): returns 1 if it names a shape. */
static int parse_phrase(char *phrase, shapes_request *r) {
    *r = (shapes_request){.count = 1, .shape = -1, .colour = -1, .size = -1, .cell = -1};
    int row = -1, col = -1;
    bool where = false;
    for (char *w = strtok(phrase, " \t\r\n"); w; w = strtok(NULL, " \t\r\n")) {
        size_t len = strlen(w);
        int i;
        if (strcmp(w, "two") == 0) r->count = 2, r->count_asked = true;
        else if (strcmp(w, "three") == 0) r->count = 3, r->count_asked = true;
        else if (strcmp(w, "small") == 0 || strcmp(w, "tiny") == 0) r->size = SIZE_SMALL;
        else if (strcmp(w, "large") == 0 || strcmp(w, "big") == 0) r->size = SIZE_LARGE;
        else if ((i = word_index(w, colour_names, SHAPES_COLOURS)) >= 0) r->colour = i;
        else if (strcmp(w, "top") == 0) row = 0, where = true;
        else if (strcmp(w, "bottom") == 0) row = 2, where = true;
        else if (strcmp(w, "left") == 0) col = 0, where = true;
        else if (strcmp(w, "right") == 0) col = 2, where = true;
        else if (strcmp(w, "center") == 0 || strcmp(w, "middle") == 0) where = true;
        else {
            if (len > 1 && w[len - 1] == 's') w[len - 1] = '\0';  /* plural */
            if ((i = word_index(w, shape_names, SHAPE_KINDS)) >= 0) r->shape = i;
        }
    }
    if (where) r->cell = (row < 0 ? 1 : row) * 3 + (col < 0 ? 1 : col);
    return r->shape >= 0;
}

int shapes_parse_prompt(const char *text, shapes_prompt *out) {
    memset(out, 0, sizeof *out);
    size_t n = strlen(text);
    char *buf = ts_malloc(n + 2);
    for (size_t i = 0; i <= n; i++) {
        char c = (char)tolower((unsigned char)text[i]);
        buf[i] = (c == '.' || c == ';') ? ',' : c;
    }
    /* Phrases are cut at commas and at the word "and". */
    int rc = 0;
    char *phrase = buf;
    while (phrase && *phrase) {
        char *comma = strchr(phrase, ',');
        char *and = strstr(phrase, " and ");
        char *end = comma;
        int skip = 1;
        if (and && (!comma || and < comma)) end = and, skip = 5;
        if (end) *end = '\0';
        shapes_request r;
        if (parse_phrase(phrase, &r)) {
            if (out->count == SHAPES_MAX_REQUESTS) {
                rc = ts_fail("prompt '%s': more than %d objects", text, SHAPES_MAX_REQUESTS);
                break;
            }
            out->items[out->count++] = r;
        }
        phrase = end ? end + skip : NULL;
    }
    free(buf);
    if (rc == 0 && out->count == 0) rc = ts_fail("prompt '%s': names no circle, square or triangle", text);
    return rc;
}

/* ---- scoring ---------------------------------------------------------------------- */

/* Objects of the scene matching the request in shape, colour (if asked) and the extra
 * attributes given. */
static int count_matching(const shapes_scene *s, const shapes_request *r, int size, int cell) {
    int n = 0;
    for (int i = 0; i < s->count; i++) {
        const shapes_object *o = &s->objects[i];
        if (o->shape != r->shape) continue;
        if (r->colour >= 0 && o->colour != r->colour) continue;
        if (size >= 0 && o->size != size) continue;
        if (cell >= 0 && o->cell != cell) continue;
        n++;
    }
    return n;
}

static bool check(shapes_score *score, shapes_attr a, bool ok) {
    score->total[a]++;
    score->passed[a] += ok;
    return ok;
}

bool shapes_score_image(const shapes_prompt *p, const shapes_scene *s, shapes_score *score) {
    int wanted = 0;
    for (int i = 0; i < p->count; i++) wanted += p->items[i].count;
    bool all = true;
    for (int i = 0; i < p->count; i++) {
        const shapes_request *r = &p->items[i];
        shapes_request kind_only = *r;
        kind_only.colour = -1;
        all &= check(score, ATTR_OBJECT, s->count >= wanted);
        all &= check(score, ATTR_SHAPE, count_matching(s, &kind_only, -1, -1) > 0);
        if (r->colour >= 0) all &= check(score, ATTR_COLOUR, count_matching(s, r, -1, -1) > 0);
        if (r->count_asked) all &= check(score, ATTR_COUNT, count_matching(s, r, r->size, -1) == r->count);
        if (r->cell >= 0) all &= check(score, ATTR_POSITION, count_matching(s, r, -1, r->cell) > 0);
        if (r->size >= 0) all &= check(score, ATTR_SIZE, count_matching(s, r, r->size, -1) > 0);
    }
    score->prompts++;
    score->prompts_correct += all;
    return all;
}

double shapes_score_accuracy(const shapes_score *score, int attr) {
    int passed = 0, total = 0;
    for (int a = 0; a < ATTR_KINDS; a++)
        if (attr == ATTR_KINDS || attr == a) passed += score->passed[a], total += score->total[a];
    return total ? (double)passed / total : -1.0;
}
