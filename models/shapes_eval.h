/*
 * shapes_eval.h — the prompt-following score of the demo's shapes world, GenEval-style.
 *
 * The world (tools/shapes/world.py) draws 1-3 flat shapes (circle, square, triangle) in six
 * colours, two sizes, one per cell of a 3x3 grid, on white. This scorer
 *   1. finds the shapes in an RGB image: each pixel takes the nearest palette colour,
 *      non-white pixels form 4-connected components, each component gets its majority
 *      colour and a shape from its silhouette (top/bottom mass, filled bounding-box corners),
 *      a size from its extent and a cell from its centre;
 *   2. parses the prompt with the world's grammar ("two red circles and a small blue square
 *      in the top left"; descriptive captions use the same words);
 *   3. checks each attribute the prompt asks for, per requested object:
 *        object    at least as many shapes drawn as the prompt asks for in all
 *        shape     a shape of the requested kind is there
 *        colour    ... of the requested kind and colour
 *        count     exactly N of that kind (and colour) — only when the prompt says two/three
 *        position  ... of that kind (and colour) in the requested cell
 *        size      ... of that kind (and colour) at the requested size
 *      A prompt is correct overall when every check passes.
 * The palette, sizes and grammar are the world's; keep the two files in step.
 */
#ifndef TESSERA_SHAPES_EVAL_H
#define TESSERA_SHAPES_EVAL_H

#include "kernels/base.h"

enum { SHAPE_CIRCLE, SHAPE_SQUARE, SHAPE_TRIANGLE, SHAPE_KINDS };
enum { SHAPES_COLOURS = 6, SHAPES_MAX_OBJECTS = 32, SHAPES_MAX_REQUESTS = 8 };
enum { SIZE_SMALL, SIZE_LARGE };

typedef enum { ATTR_OBJECT, ATTR_SHAPE, ATTR_COLOUR, ATTR_COUNT, ATTR_POSITION, ATTR_SIZE, ATTR_KINDS } shapes_attr;

typedef struct {
    int shape, colour, size, cell;  /* cell 0..8, row-major from the top left */
    int area;                       /* pixels */
    float cx, cy;                   /* centre of the bounding box, pixels */
} shapes_object;

typedef struct {
    shapes_object objects[SHAPES_MAX_OBJECTS];
    int count;
} shapes_scene;

/* One object phrase of a prompt; -1 means the prompt does not say. */
typedef struct {
    int count;                      /* 1 for "a"/"an"; 2, 3 for "two", "three" */
    bool count_asked;               /* true only for an explicit number word >= 2 */
    int shape, colour, size, cell;
} shapes_request;

typedef struct {
    shapes_request items[SHAPES_MAX_REQUESTS];
    int count;
} shapes_prompt;

typedef struct {
    int passed[ATTR_KINDS], total[ATTR_KINDS];
    int prompts, prompts_correct;
} shapes_score;

const char *shapes_attr_name(shapes_attr a);   /* "object", "shape", ... */
const char *shapes_shape_name(int shape);
const char *shapes_colour_name(int colour);

/* Finds the shapes in an RGB8 image (rows top to bottom). Any size; thresholds scale with it. */
int shapes_detect(const uint8_t *rgb, int width, int height, shapes_scene *out);
/* Same, reading a PNG. */
int shapes_detect_png(const char *path, shapes_scene *out);

/* Parses a prompt; phrases that name no shape (", on a white background") are skipped.
 * -1 with a message if it names no shape at all or too many objects. */
int shapes_parse_prompt(const char *text, shapes_prompt *out);

/* Adds one image's checks to *score; returns true when all of them passed. */
bool shapes_score_image(const shapes_prompt *prompt, const shapes_scene *scene, shapes_score *score);

/* Fraction of checks passed for one attribute (or overall with ATTR_KINDS); -1 if none. */
double shapes_score_accuracy(const shapes_score *score, int attr);

#endif
