/*
 * cmd_eval.c — `tessera eval shapes`: the prompt-following score of images of the demo's
 * shapes world (eval/shapes_eval.h), per attribute, and per prompt strict (exact counts,
 * the world's meaning) and lenient (GenEval's "at least"); objects no phrase asked for are
 * reported as extra.
 *
 *   tessera eval shapes --images DIR [--prompts FILE] [--json OUT] [--min-accuracy X] [--list]
 *
 * The PNGs of DIR, sorted by name, pair with the non-empty lines of FILE in order. Without
 * --prompts each image's prompt is read from its A1111 "parameters" text, as tessera writes it.
 */
#include "cli/args.h"
#include "models/formats/image_png.h"
#include "eval/shapes_eval.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(int status) {
    fprintf(stderr,
            "usage: tessera eval shapes (--images DIR [--prompts FILE] | --manifest FILE) [--json OUT]\n"
            "                           [--min-accuracy X] [--list]\n"
            "Scores images of the demo's shapes world against their prompts: object, shape, colour,\n"
            "count, position and size checks, and the share of prompts with every check right:\n"
            "strict (\"a red circle\" = exactly one red circle, as the world's captions mean it) and\n"
            "lenient (at least one; extra objects ignored). Objects no phrase asked for are counted.\n"
            "  --images DIR        the PNGs, paired with the prompts in file-name order\n"
            "  --manifest FILE     or a job's manifest.jsonl: each record's file and its prompt\n"
            "  --prompts FILE      one prompt a line (default: each PNG's own 'parameters' prompt)\n"
            "  --json OUT          also write the scores as JSON\n"
            "  --min-accuracy X    exit 1 when the strict share of correct prompts is below X (0..1)\n"
            "  --list              print each image's verdict and what was found in it\n");
    return status;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The .png names in dir, sorted (*names malloc'd, each name too). */
static int list_pngs(const char *dir, char ***names, int *count) {
    DIR *d = opendir(dir);
    if (!d) return ts_fail("%s: cannot open the image folder", dir);
    int n = 0, cap = 64;
    char **v = ts_malloc(cap * sizeof *v);
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".png") != 0) continue;
        if (n == cap) v = ts_realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = ts_strdup(e->d_name);
    }
    closedir(d);
    qsort(v, n, sizeof *v, by_name);
    *names = v, *count = n;
    return n ? 0 : ts_fail("%s: no .png files", dir);
}

/* Non-empty lines of path (*lines malloc'd). */
static int read_lines(const char *path, char ***lines, int *count) {
    FILE *f = fopen(path, "r");
    if (!f) return ts_fail("%s: cannot open the prompt file", path);
    int n = 0, cap = 64;
    char **v = ts_malloc(cap * sizeof *v);
    char *line = NULL;
    size_t size = 0;
    ssize_t len;
    while ((len = getline(&line, &size, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0) continue;
        if (n == cap) v = ts_realloc(v, (cap *= 2) * sizeof *v);
        v[n++] = ts_strdup(line);
    }
    free(line);
    fclose(f);
    *lines = v, *count = n;
    return 0;
}

static void describe(const shapes_scene *s, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->count && used < size; i++) {
        const shapes_object *o = &s->objects[i];
        used += snprintf(buf + used, size - used, "%s%s %s %s @%d", i ? ", " : "", o->size ? "large" : "small",
                         shapes_colour_name(o->colour), shapes_shape_name(o->shape), o->cell);
        if (used >= size) break;
    }
}

/* The scores, and per image (in order) its file and verdicts, for paired tests. */
static int write_json(const char *path, const shapes_score *sc, cJSON *images) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "images", images);
    cJSON *attrs = cJSON_AddObjectToObject(root, "attributes");
    for (int a = 0; a < ATTR_KINDS; a++) {
        cJSON *o = cJSON_AddObjectToObject(attrs, shapes_attr_name(a));
        cJSON_AddNumberToObject(o, "passed", sc->passed[a]);
        cJSON_AddNumberToObject(o, "total", sc->total[a]);
        cJSON_AddNumberToObject(o, "accuracy", shapes_score_accuracy(sc, a));
    }
    cJSON_AddNumberToObject(root, "checks_accuracy", shapes_score_accuracy(sc, ATTR_KINDS));
    cJSON_AddNumberToObject(root, "prompts", sc->prompts);
    cJSON_AddNumberToObject(root, "strict_correct", sc->strict_correct);
    cJSON_AddNumberToObject(root, "lenient_correct", sc->lenient_correct);
    cJSON_AddNumberToObject(root, "strict", sc->prompts ? (double)sc->strict_correct / sc->prompts : 0.0);
    cJSON_AddNumberToObject(root, "lenient", sc->prompts ? (double)sc->lenient_correct / sc->prompts : 0.0);
    cJSON_AddNumberToObject(root, "overall", sc->prompts ? (double)sc->strict_correct / sc->prompts : 0.0);
    cJSON_AddNumberToObject(root, "extra_objects", sc->extra_objects);
    cJSON_AddNumberToObject(root, "images_with_extra", sc->images_with_extra);
    char *text = cJSON_Print(root);
    int rc = write_file_atomic(path, text, strlen(text));
    free(text);
    cJSON_Delete(root);
    return rc;
}

/* A job's manifest.jsonl: each rendered record's file (relative to the manifest's folder)
 * and its prompt as the user wrote it, before any expansion. */
static int read_manifest(const char *path, char *dir, size_t dir_size, char ***files, char ***prompts, int *count) {
    snprintf(dir, dir_size, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, dir_size, ".");
    char **lines = NULL;
    int n = 0;
    if (read_lines(path, &lines, &n) != 0) return -1;
    *files = ts_calloc((size_t)n + 1, sizeof(char *));
    *prompts = ts_calloc((size_t)n + 1, sizeof(char *));
    *count = 0;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_Parse(lines[i]);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, "file"), *p = cJSON_GetObjectItemCaseSensitive(o, "prompt");
        if (cJSON_IsString(f) && cJSON_IsString(p) && f->valuestring[0]) {
            (*files)[*count] = ts_strdup(f->valuestring);
            (*prompts)[(*count)++] = ts_strdup(p->valuestring);
        } else if (!rc) rc = ts_fail("%s:%d: a manifest line needs 'file' and 'prompt'", path, i + 1);
        cJSON_Delete(o);
        free(lines[i]);
    }
    free(lines);
    return rc;
}

static int eval_shapes(int argc, char **argv) {
    const char *images = NULL, *prompts = NULL, *json = NULL, *manifest = NULL;
    char manifest_dir[4096];
    double min_accuracy = -1;
    bool list = false;
    cli_args args;
    cli_args_init(&args, argc, argv);
    bool option;
    for (const char *a; (a = cli_args_next(&args, &option));) {
        bool has_value = option && args.next < args.argc;
        if (!option) { fprintf(stderr, "tessera eval shapes: unexpected argument '%s'\n", a); return usage(2); }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(0);
        else if (strcmp(a, "--images") == 0 && has_value) images = cli_args_value(&args);
        else if (strcmp(a, "--prompts") == 0 && has_value) prompts = cli_args_value(&args);
        else if (strcmp(a, "--manifest") == 0 && has_value) manifest = cli_args_value(&args);
        else if (strcmp(a, "--json") == 0 && has_value) json = cli_args_value(&args);
        else if (strcmp(a, "--min-accuracy") == 0 && has_value) min_accuracy = atof(cli_args_value(&args));
        else if (strcmp(a, "--list") == 0) list = true;
        else { fprintf(stderr, "tessera eval shapes: unknown or incomplete option '%s'\n", a); return usage(2); }
    }
    if (!images == !manifest) return usage(2);

    char **names = NULL, **lines = NULL;
    cJSON *per_image = NULL;
    int n_images = 0, n_prompts = 0, status = 1;
    if (manifest) {
        if (read_manifest(manifest, manifest_dir, sizeof manifest_dir, &names, &lines, &n_images) != 0) goto fail;
        n_prompts = n_images;
        images = manifest_dir;
        prompts = manifest;
    } else if (list_pngs(images, &names, &n_images) != 0) goto fail;
    if (prompts && !manifest) {
        if (read_lines(prompts, &lines, &n_prompts) != 0) goto fail;
        if (n_prompts != n_images) {
            ts_fail("%s has %d prompts but %s has %d PNGs", prompts, n_prompts, images, n_images);
            goto fail;
        }
    }
    shapes_score score = {0};
    per_image = cJSON_CreateArray();
    for (int i = 0; i < n_images; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", images, names[i]);
        uint8_t *rgb = NULL;
        char *parameters = NULL;
        int w, h;
        if (image_png_read(path, &rgb, &w, &h, prompts ? NULL : &parameters) != 0) goto fail;
        const char *prompt = prompts ? lines[i] : NULL;
        gen_parameters gp = {0};
        if (!prompt) {
            if (!parameters || gen_parameters_parse(parameters, &gp) != 0) {
                free(rgb), free(parameters);
                ts_fail("%s: no prompt in the PNG's parameters (give --prompts)", path);
                goto fail;
            }
            prompt = gp.prompt;
        }
        shapes_scene scene;
        shapes_prompt parsed;
        int rc = shapes_detect(rgb, w, h, &scene);
        if (rc == 0) rc = shapes_parse_prompt(prompt, &parsed);
        if (rc == 0) {
            shapes_verdict v;
            shapes_judge(&parsed, &scene, &v);
            shapes_score_add(&score, &v);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "file", names[i]);
            cJSON_AddBoolToObject(o, "strict", v.strict);
            cJSON_AddBoolToObject(o, "lenient", v.lenient);
            cJSON_AddNumberToObject(o, "extra", v.extra);
            cJSON_AddItemToArray(per_image, o);
            if (list) {
                char found[1024];
                describe(&scene, found, sizeof found);
                printf("%s %s | %s | found: %s%s\n", v.strict ? "ok     " : v.lenient ? "lenient" : "FAIL   ", names[i],
                       prompt, found, v.extra ? " (extra objects)" : "");
            }
        }
        free(rgb), free(parameters);
        gen_parameters_clear(&gp);
        if (rc != 0) { ts_fail_wrap("%s", path); goto fail; }
    }

    printf("%-10s %8s %8s %9s\n", "attribute", "passed", "total", "accuracy");
    for (int a = 0; a < ATTR_KINDS; a++)
        if (score.total[a]) printf("%-10s %8d %8d %8.1f%%\n", shapes_attr_name(a), score.passed[a], score.total[a],
                                   100.0 * shapes_score_accuracy(&score, a));
    double overall = (double)score.strict_correct / score.prompts;
    printf("%-10s %8s %8s %8.1f%%\n", "checks", "", "", 100.0 * shapes_score_accuracy(&score, ATTR_KINDS));
    printf("%-10s %8d %8d %8.1f%%   (exact counts)\n", "strict", score.strict_correct, score.prompts, 100.0 * overall);
    printf("%-10s %8d %8d %8.1f%%   (at least; extra objects ignored)\n", "lenient", score.lenient_correct,
           score.prompts, 100.0 * score.lenient_correct / score.prompts);
    printf("%-10s %8d          in %d images\n", "extra", score.extra_objects, score.images_with_extra);
    if (json) {
        int rc = write_json(json, &score, per_image);
        per_image = NULL;
        if (rc != 0) goto fail;
    }
    status = 0;
    if (min_accuracy >= 0 && overall < min_accuracy) {
        fprintf(stderr, "tessera eval shapes: strict accuracy %.3f is below the minimum %.3f\n", overall, min_accuracy);
        status = 1;
    }
    goto done;
fail:
    fprintf(stderr, "tessera: error: %s\n", ts_last_error());
done:
    cJSON_Delete(per_image);
    for (int i = 0; i < n_images; i++) free(names[i]);
    for (int i = 0; i < n_prompts; i++) free(lines[i]);
    free(names), free(lines);
    return status;
}

int cmd_eval(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "shapes") == 0) return eval_shapes(argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) return usage(0);
    fprintf(stderr, "tessera eval: the only benchmark is 'shapes' (tessera eval shapes --help)\n");
    return 2;
}
