/*
 * shapes_eval.c — finds the shapes of the demo world in an image, parses a prompt in the
 * world's grammar and judges one against the other (see shapes_eval.h).
 *
 * Hand-written because it is the world's own definition: colour and ink by projection on
 * the palette, blobs by flood fill, a classifier on blur-invariant moments, and a 32x32
 * assignment problem (no library we depend on solves one). No general vision library
 * knows this palette or grammar.
 */
#include "eval/shapes_eval.h"
#include "models/formats/image_png.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The world's palette (tools/shapes/world.py COLOURS). */
static const uint8_t palette[SHAPES_COLOURS][3] = {
    {220, 30, 30}, {30, 160, 50}, {30, 60, 220}, {240, 210, 20}, {140, 50, 180}, {245, 130, 20},
};
static const char *const colour_names[SHAPES_COLOURS] = {"red", "green", "blue", "yellow", "purple", "orange"};
static const char *const shape_names[SHAPE_KINDS] = {"circle", "square", "triangle"};
static const char *const attr_names[ATTR_KINDS] = {"object", "shape", "colour", "count", "position", "size"};

/* Geometry of the world at its native 48 px: small shapes are 7 px wide, large 13 px, one
 * per 16 px cell, never across a grid line. */
#define WORLD_SIZE 48.0f
#define LARGE_FROM 10.0f          /* side at which a shape counts as large */
#define MIN_MASS 12.0f            /* fainter blobs are noise */
#define SPLIT_FROM 16.0f          /* a blob this wide holds shapes of two cells: cut at the grid */
#define CORE_INK 0.5f             /* half ink: the edge of a blurred shape stays where it was */
#define HALO_INK 0.01f            /* fainter pixels are background */
#define HALO_RADIUS 5             /* pixels (at 48 px) around a blob whose faint ink is its blur */
/* Area over side^2 of the world's drawn shapes (PIL's 7 and 13 px circles fill 0.755 and
 * 0.763 of their box, its triangles 0.51 and 0.50). */
static const float fill_of[SHAPE_KINDS] = {0.76f, 1.0f, 0.5f};
/* Classifier thresholds. Measured on the world's shapes, sharp and blurred (PIL radius 0-2):
 * kappa3(y) / mass^1.5 is -0.023..-0.027 for triangles, 0 for the others; the diagonal over
 * axis fourth cumulant is 0.50-0.65 for squares, 1.0-1.27 for circles. The demo's own VAE
 * (ground truth round-tripped through diffusers) draws small circles flat-bottomed, 0.48-0.82
 * (median 0.67), and small squares 0.35-0.65: 0.66 keeps every blurred shape right and
 * halves the decoder's confusions against 0.8 (31 instead of 60 of 262 circles and squares). */
#define TRIANGLE_SKEW (-0.010)
#define SQUARE_KURTOSIS_RATIO 0.66

const char *shapes_attr_name(shapes_attr a) { return a >= 0 && a < ATTR_KINDS ? attr_names[a] : "?"; }
const char *shapes_shape_name(int s) { return s >= 0 && s < SHAPE_KINDS ? shape_names[s] : "?"; }
const char *shapes_colour_name(int c) { return c >= 0 && c < SHAPES_COLOURS ? colour_names[c] : "?"; }

/* How much of colour c pixel p shows: its projection on the white -> c segment, 0..1. */
static float strength(const uint8_t *p, int c, float *residual) {
    float num = 0, den = 0;
    for (int k = 0; k < 3; k++) {
        float d = 255.0f - (float)palette[c][k];
        num += (255.0f - (float)p[k]) * d, den += d * d;
    }
    float s = num / den;
    s = s < 0 ? 0 : s > 1 ? 1 : s;
    if (residual) {
        float r = 0;
        for (int k = 0; k < 3; k++) {
            float e = 255.0f - s * (255.0f - (float)palette[c][k]) - (float)p[k];
            r += e * e;
        }
        *residual = r;
    }
    return s;
}

/* The palette colour a pixel lies closest to (as white + ink * (colour - white)), and its ink. */
static float split_pixel(const uint8_t *p, uint8_t *colour) {
    float best_r = INFINITY, ink = 0;
    for (int c = 0; c < SHAPES_COLOURS; c++) {
        float r, s = strength(p, c, &r);
        if (r < best_r) best_r = r, ink = s, *colour = (uint8_t)c;
    }
    return ink;
}

/* Ink-weighted moments of one blob; all but the second cumulants are unchanged by a blur. */
typedef struct {
    double mass, sx, sy;              /* first pass */
    double m2x, m2y, m3y, m4x, m4y, m2u, m2v, m4u, m4v;  /* central, second pass */
} moments;

static int classify(const moments *m) {
    double M = m->mass;
    double mx2 = m->m2x / M, my2 = m->m2y / M, mu2 = m->m2u / M, mv2 = m->m2v / M;
    if (m->m3y / M / pow(M, 1.5) < TRIANGLE_SKEW) return SHAPE_TRIANGLE;  /* mass low: apex up */
    double axes = (m->m4x / M - 3 * mx2 * mx2) + (m->m4y / M - 3 * my2 * my2);
    double diagonals = (m->m4u / M - 3 * mu2 * mu2) + (m->m4v / M - 3 * mv2 * mv2);
    return axes < 0 && diagonals / axes < SQUARE_KURTOSIS_RATIO ? SHAPE_SQUARE : SHAPE_CIRCLE;
}

static int cell_of(float x, float y, int width, int height) {
    int col = (int)(x * 3.0f / (float)width), row = (int)(y * 3.0f / (float)height);
    col = col < 0 ? 0 : col > 2 ? 2 : col;
    row = row < 0 ? 0 : row > 2 ? 2 : row;
    return row * 3 + col;
}

int shapes_detect(const uint8_t *rgb, int width, int height, shapes_scene *out) {
    if (width < 3 || height < 3) return ts_fail("shapes_detect: image %dx%d is too small", width, height);
    memset(out, 0, sizeof *out);
    size_t n = (size_t)width * height;
    float *ink = ts_malloc(n * sizeof *ink);
    uint8_t *colour = ts_malloc(n);
    int *blob = ts_malloc(n * sizeof *blob), *queue = ts_malloc(n * sizeof *queue), *dist = ts_malloc(n * sizeof *dist);
    for (size_t i = 0; i < n; i++) ink[i] = split_pixel(rgb + 3 * i, &colour[i]), blob[i] = -1, dist[i] = -1;
    float scale = (float)(width < height ? width : height) / WORLD_SIZE;

    /* Blobs: 4-connected pixels of at least half ink, whatever their colour (a decoder's
     * colours drift inside one shape). */
    int blobs = 0;
    for (size_t seed = 0; seed < n; seed++) {
        if (ink[seed] < CORE_INK || blob[seed] >= 0) continue;
        int top = 0, x0 = width, y0 = height, x1 = -1, y1 = -1;
        queue[top++] = (int)seed;
        blob[seed] = blobs;
        for (int read = 0; read < top; read++) {
            int p = queue[read], x = p % width, y = p / width;
            if (x < x0) x0 = x;
            if (x > x1) x1 = x;
            if (y < y0) y0 = y;
            if (y > y1) y1 = y;
            const int nb[4][2] = {{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}};
            for (int k = 0; k < 4; k++) {
                int nx = nb[k][0], ny = nb[k][1];
                if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
                int q = ny * width + nx;
                if (ink[q] < CORE_INK || blob[q] >= 0) continue;
                blob[q] = blobs;
                queue[top++] = q;
            }
        }
        /* Wider than any one shape: neighbours whose blurred edges touch. The world puts one
         * shape per cell and none across a grid line, so the grid separates them. */
        if ((float)(x1 - x0 + 1) >= SPLIT_FROM * scale || (float)(y1 - y0 + 1) >= SPLIT_FROM * scale) {
            int id_of_cell[9];
            for (int c = 0; c < 9; c++) id_of_cell[c] = -1;
            for (int i = 0; i < top; i++) {
                int p = queue[i], c = cell_of((float)(p % width) + 0.5f, (float)(p / width) + 0.5f, width, height);
                if (id_of_cell[c] < 0) id_of_cell[c] = blobs++;
                blob[p] = id_of_cell[c];
            }
        } else blobs++;
    }

    /* The faint ink around each blob is its blur: it joins the nearest blob (breadth first,
     * up to HALO_RADIUS) so that the blob's moments are those of the whole shape. */
    int top = 0, radius = (int)lroundf(HALO_RADIUS * scale);
    if (radius < 1) radius = 1;
    for (size_t i = 0; i < n; i++)
        if (blob[i] >= 0) queue[top++] = (int)i, dist[i] = 0;
    for (int read = 0; read < top; read++) {
        int p = queue[read], x = p % width, y = p / width;
        if (dist[p] >= radius) continue;
        const int nb[4][2] = {{x - 1, y}, {x + 1, y}, {x, y - 1}, {x, y + 1}};
        for (int k = 0; k < 4; k++) {
            int nx = nb[k][0], ny = nb[k][1];
            if (nx < 0 || ny < 0 || nx >= width || ny >= height) continue;
            int q = ny * width + nx;
            if (blob[q] >= 0 || ink[q] < HALO_INK) continue;
            blob[q] = blob[p], dist[q] = dist[p] + 1;
            queue[top++] = q;
        }
    }

    /* Each blob: its colour (most ink among its half-ink pixels), then its moments in that
     * colour's ink. */
    float (*votes)[SHAPES_COLOURS] = ts_calloc(blobs ? (size_t)blobs : 1, sizeof *votes);
    moments *mo = ts_calloc(blobs ? (size_t)blobs : 1, sizeof *mo);
    int *blob_colour = ts_calloc(blobs ? (size_t)blobs : 1, sizeof *blob_colour);
    for (size_t i = 0; i < n; i++)
        if (blob[i] >= 0 && dist[i] == 0) votes[blob[i]][colour[i]] += ink[i];
    for (int b = 0; b < blobs; b++)
        for (int c = 1; c < SHAPES_COLOURS; c++)
            if (votes[b][c] > votes[b][blob_colour[b]]) blob_colour[b] = c;
    for (size_t i = 0; i < n; i++) {
        if (blob[i] < 0) continue;
        moments *m = &mo[blob[i]];
        double w = strength(rgb + 3 * i, blob_colour[blob[i]], NULL);
        m->mass += w, m->sx += w * ((double)(i % width) + 0.5), m->sy += w * ((double)(i / width) + 0.5);
    }
    for (size_t i = 0; i < n; i++) {
        if (blob[i] < 0 || mo[blob[i]].mass <= 0) continue;
        moments *m = &mo[blob[i]];
        double w = strength(rgb + 3 * i, blob_colour[blob[i]], NULL);
        double x = (double)(i % width) + 0.5 - m->sx / m->mass, y = (double)(i / width) + 0.5 - m->sy / m->mass;
        double u = (x + y) * M_SQRT1_2, v = (x - y) * M_SQRT1_2;
        m->m2x += w * x * x, m->m2y += w * y * y, m->m3y += w * y * y * y;
        m->m4x += w * x * x * x * x, m->m4y += w * y * y * y * y;
        m->m2u += w * u * u, m->m2v += w * v * v, m->m4u += w * u * u * u * u, m->m4v += w * v * v * v * v;
    }
    for (int b = 0; b < blobs && out->count < SHAPES_MAX_OBJECTS; b++) {
        const moments *m = &mo[b];
        if (m->mass < MIN_MASS * scale * scale) continue;
        shapes_object *o = &out->objects[out->count++];
        o->colour = blob_colour[b];
        o->shape = classify(m);
        o->mass = (float)m->mass;
        float side = sqrtf(o->mass / fill_of[o->shape]);
        o->size = side >= LARGE_FROM * scale ? SIZE_LARGE : SIZE_SMALL;
        o->cx = (float)(m->sx / m->mass), o->cy = (float)(m->sy / m->mass);
        o->cell = cell_of(o->cx, o->cy, width, height);
    }
    free(votes), free(mo), free(blob_colour);
    free(ink), free(colour), free(blob), free(queue), free(dist);
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

/* One phrase ("two small red circles in the top left"): 1 if it names a shape, 0 if it is
 * the background phrase or empty, -1 with a message otherwise. */
static int parse_phrase(char *phrase, const char *prompt, shapes_request *r) {
    *r = (shapes_request){.count = 1, .shape = -1, .colour = -1, .size = -1, .cell = -1};
    int row = -1, col = -1, words = 0, background = 0;
    bool where = false;
    for (char *w = strtok(phrase, " \t\r\n"); w; w = strtok(NULL, " \t\r\n")) {
        size_t len = strlen(w);
        int i;
        words++;
        if (!strcmp(w, "a") || !strcmp(w, "an") || !strcmp(w, "one")) r->count = 1;
        else if (!strcmp(w, "two")) r->count = 2;
        else if (!strcmp(w, "three")) r->count = 3;
        else if (!strcmp(w, "small") || !strcmp(w, "tiny")) r->size = SIZE_SMALL;
        else if (!strcmp(w, "large") || !strcmp(w, "big")) r->size = SIZE_LARGE;
        else if ((i = word_index(w, colour_names, SHAPES_COLOURS)) >= 0) r->colour = i;
        else if (!strcmp(w, "top")) row = 0, where = true;
        else if (!strcmp(w, "bottom")) row = 2, where = true;
        else if (!strcmp(w, "left")) col = 0, where = true;
        else if (!strcmp(w, "right")) col = 2, where = true;
        else if (!strcmp(w, "center") || !strcmp(w, "centre") || !strcmp(w, "middle")) where = true;
        else if (!strcmp(w, "in") || !strcmp(w, "the")) continue;
        else if (!strcmp(w, "on") || !strcmp(w, "white") || !strcmp(w, "background")) background++;
        else if ((i = word_index(w, shape_names, SHAPE_KINDS)) >= 0) r->shape = i;
        else if (len > 1 && w[len - 1] == 's' && (w[len - 1] = '\0', (i = word_index(w, shape_names, SHAPE_KINDS)) >= 0))
            r->shape = i;
        else {
            if (len > 1 && w[len - 1] == '\0') w[len - 1] = 's';
            return ts_fail("prompt '%s': unknown word '%s' (the shapes world's grammar: a/an/one/two/three, "
                           "small/large, six colours, circle/square/triangle, in the top/center/bottom "
                           "left/center/right)", prompt, w);
        }
    }
    if (r->shape >= 0 && background)
        return ts_fail("prompt '%s': 'on a white background' is its own phrase", prompt);
    if (r->shape < 0) {
        if (words == 0 || background) return 0;
        return ts_fail("prompt '%s': a phrase names no circle, square or triangle", prompt);
    }
    if (where) r->cell = (row < 0 ? 1 : row) * 3 + (col < 0 ? 1 : col);
    if (where && r->count > 1)
        return ts_fail("prompt '%s': %d objects cannot share one cell", prompt, r->count);
    return 1;
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
        int got = parse_phrase(phrase, text, &r);
        if (got < 0) { rc = -1; break; }
        if (got) {
            if (out->count == SHAPES_MAX_REQUESTS) {
                rc = ts_fail("prompt '%s': more than %d phrases", text, SHAPES_MAX_REQUESTS);
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

/* ---- judging ---------------------------------------------------------------------- */

static bool fits(const shapes_request *r, const shapes_object *o) {
    return o->shape == r->shape && (r->colour < 0 || o->colour == r->colour) && (r->size < 0 || o->size == r->size) &&
           (r->cell < 0 || o->cell == r->cell);
}

/* Attributes of r that o satisfies, plus one for being there at all. */
static int satisfied(const shapes_request *r, const shapes_object *o) {
    return 1 + (o->shape == r->shape) + (r->colour >= 0 && o->colour == r->colour) +
           (r->size >= 0 && o->size == r->size) + (r->cell >= 0 && o->cell == r->cell);
}

#define ASSIGN_MAX ((int)SHAPES_MAX_OBJECTS > (int)SHAPES_MAX_SLOTS ? (int)SHAPES_MAX_OBJECTS : (int)SHAPES_MAX_SLOTS)

/* Minimum-cost assignment of an n x n cost matrix (Hungarian method with potentials,
 * O(n^3)); row_to[i] = the column of row i. */
static void assign(int n, const int *cost, int *row_to) {
    enum { N = ASSIGN_MAX };
    int u[N + 1] = {0}, v[N + 1] = {0}, col_to[N + 1] = {0}, way[N + 1] = {0};
    for (int i = 1; i <= n; i++) {
        int minv[N + 1], j0 = 0;
        bool used[N + 1] = {0};
        for (int j = 0; j <= n; j++) minv[j] = INT_MAX;
        col_to[0] = i;
        do {
            used[j0] = true;
            int i0 = col_to[j0], delta = INT_MAX, j1 = 0;
            for (int j = 1; j <= n; j++) {
                if (used[j]) continue;
                int c = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                if (c < minv[j]) minv[j] = c, way[j] = j0;
                if (minv[j] < delta) delta = minv[j], j1 = j;
            }
            for (int j = 0; j <= n; j++)
                if (used[j]) u[col_to[j]] += delta, v[j] -= delta;
                else minv[j] -= delta;
            j0 = j1;
        } while (col_to[j0] != 0);
        do {
            int j1 = way[j0];
            col_to[j0] = col_to[j1];
            j0 = j1;
        } while (j0);
    }
    for (int j = 1; j <= n; j++)
        if (col_to[j]) row_to[col_to[j] - 1] = j - 1;
}

static bool check(shapes_verdict *v, shapes_attr a, bool ok) {
    v->total[a]++;
    v->passed[a] += ok;
    return ok;
}

void shapes_judge(const shapes_prompt *p, const shapes_scene *s, shapes_verdict *v) {
    memset(v, 0, sizeof *v);
    /* One slot per asked-for object. */
    int owner[SHAPES_MAX_SLOTS];
    for (int i = 0; i < p->count; i++)
        for (int k = 0; k < p->items[i].count && v->slots < SHAPES_MAX_SLOTS; k++) owner[v->slots++] = i;
    int n = v->slots > s->count ? v->slots : s->count;
    int *cost = ts_calloc(n ? (size_t)n * n : 1, sizeof *cost), row_to[ASSIGN_MAX];
    enum { MOST = 5 };          /* satisfied() is at most 5 */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            cost[i * n + j] = MOST - (i < v->slots && j < s->count ? satisfied(&p->items[owner[i]], &s->objects[j]) : 0);
    if (n) assign(n, cost, row_to);
    free(cost);

    bool all_slots = true;
    bool used[SHAPES_MAX_OBJECTS] = {0};
    for (int i = 0; i < v->slots; i++) {
        const shapes_request *r = &p->items[owner[i]];
        int j = row_to[i] < s->count ? row_to[i] : -1;
        const shapes_object *o = j >= 0 ? &s->objects[j] : NULL;
        v->matched[i] = j;
        if (j >= 0) used[j] = true;
        bool ok = check(v, ATTR_OBJECT, o != NULL);
        ok &= check(v, ATTR_SHAPE, o && o->shape == r->shape);
        if (r->colour >= 0) ok &= check(v, ATTR_COLOUR, o && o->colour == r->colour);
        if (r->size >= 0) ok &= check(v, ATTR_SIZE, o && o->size == r->size);
        if (r->cell >= 0) ok &= check(v, ATTR_POSITION, o && o->cell == r->cell);
        all_slots &= ok;
    }
    /* Counts in the world's sense: exactly N objects fit the phrase. */
    bool counts = true;
    for (int i = 0; i < p->count; i++) {
        int fitting = 0;
        for (int j = 0; j < s->count; j++) fitting += fits(&p->items[i], &s->objects[j]);
        check(v, ATTR_COUNT, fitting == p->items[i].count);
        counts &= fitting == p->items[i].count;
    }
    for (int j = 0; j < s->count; j++) v->extra += !used[j];
    v->lenient = all_slots;
    v->strict = all_slots && counts;
}

void shapes_score_add(shapes_score *score, const shapes_verdict *v) {
    for (int a = 0; a < ATTR_KINDS; a++) score->passed[a] += v->passed[a], score->total[a] += v->total[a];
    score->prompts++;
    score->strict_correct += v->strict;
    score->lenient_correct += v->lenient;
    score->extra_objects += v->extra;
    score->images_with_extra += v->extra > 0;
}

double shapes_score_accuracy(const shapes_score *score, int attr) {
    int passed = 0, total = 0;
    for (int a = 0; a < ATTR_KINDS; a++)
        if (attr == ATTR_KINDS || attr == a) passed += score->passed[a], total += score->total[a];
    return total ? (double)passed / total : -1.0;
}
