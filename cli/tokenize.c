// tokenize.c: `arc2face tokenize "TEXT"`: the CLIP token ids of a prompt (infer/tokenizer.h),
// as SD1.5 pipelines produce them: BOS, tokens, EOS, EOS padding to 77.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../infer/tokenizer.h"
#include "../kernels/common.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: arc2face tokenize \"TEXT\" [--tokenizer DIR | --vocab vocab.json --merges merges.txt]\n"
            "                         [--max-len N] [--tokens]\n"
            "\n"
            "Prints the N (default 77) CLIP token ids of TEXT on one line, exactly as transformers'\n"
            "CLIPTokenizer gives them with padding=\"max_length\", truncation=True: <|startoftext|>,\n"
            "at most N-2 tokens, <|endoftext|>, then <|endoftext|> padding (49406 / 49407 for SD1.5).\n"
            "\n"
            "  --tokenizer DIR     folder with vocab.json and merges.txt (an SD1.5 folder's tokenizer/)\n"
            "  --vocab, --merges   the two files given one by one (both needed)\n"
            "                      default: the bundled SD1.5 files, assets/tokenizer/\n"
            "  --max-len N         number of ids (>= 2; default 77)\n"
            "  --tokens            also print one line per id before the padding: position, id, token\n"
            "\n"
            "Example: arc2face tokenize \"photo of a id person\"\n"
            "  49406 1125 539 320 1014 2533 49407 49407 ... (77 ids)\n");
}

int cmd_tokenize(int argc, char **argv) {
    const char *text = NULL, *dir = NULL, *vocab = NULL, *merges = NULL;
    int max_len = 77, show = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            usage(stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--tokenizer") || !strcmp(a, "--vocab") || !strcmp(a, "--merges") ||
                   !strcmp(a, "--max-len")) {
            if (++i == argc) return cli_usage_error("tokenize", "%s needs a value", a);
            if (!strcmp(a, "--tokenizer"))
                dir = argv[i];
            else if (!strcmp(a, "--vocab"))
                vocab = argv[i];
            else if (!strcmp(a, "--merges"))
                merges = argv[i];
            else {
                char *end;
                long v = strtol(argv[i], &end, 10);
                if (*end || end == argv[i] || v < 2 || v > 1 << 20)
                    return cli_usage_error("tokenize", "--max-len must be an integer >= 2, got '%s'", argv[i]);
                max_len = (int)v;
            }
        } else if (!strcmp(a, "--tokens")) {
            show = 1;
        } else if (a[0] == '-' && a[1] == '-') {
            return cli_usage_error("tokenize", "unknown option '%s'", a);
        } else if (text) {
            return cli_usage_error("tokenize", "one TEXT only (quote it), got '%s' as well", a);
        } else {
            text = a;
        }
    }
    if (!text) return cli_usage_error("tokenize", "TEXT is required (\"\" for the empty prompt)");
    if (!vocab != !merges) return cli_usage_error("tokenize", "--vocab and --merges go together");
    if (vocab && dir) return cli_usage_error("tokenize", "give --tokenizer DIR or --vocab/--merges, not both");

    ClipTokenizer *t = vocab ? clip_tokenizer_load(vocab, merges) : clip_tokenizer_load_dir(dir);
    if (!t) return cli_error("tokenize: %s", a2f_last_error());
    int32_t *ids = xmalloc((size_t)max_len * sizeof *ids);
    int n = clip_tokenize(t, text, ids, max_len);
    if (n < 0) {
        free(ids);
        clip_tokenizer_free(t);
        return cli_error("%s", a2f_last_error());
    }
    for (int i = 0; i < max_len; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    if (show)
        for (int i = 0; i < n; i++) {
            const char *s = clip_token_str(t, ids[i]);
            printf("%4d %6d %s\n", i, ids[i], s ? s : "?");
        }
    free(ids);
    clip_tokenizer_free(t);
    return CLI_OK;
}
