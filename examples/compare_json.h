/* compare_json.h -- fut-compare's figures as JSON: the configuration, every
 * cell (median, min-max and each run's wall time, CPU time, stalls,
 * checksum) and every verdict (its text and its tiers).  Included once, by
 * compare.c, after its cells and verdicts. */
#ifndef COMPARE_JSON_H
#define COMPARE_JSON_H

static void json_list(FILE *f, const double *v, unsigned n)
{
    fputc('[', f);
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "%s%.3f", i ? ", " : "", v[i]);
    fputc(']', f);
}

static void json_cell(FILE *f, int w, int e)
{
    const struct cell *c = &cells[w][e];
    double base = cells[w][baseline(w)].wall;
    fprintf(f,
            "\n    {\"workload\": \"%s\", \"executor\": \"%s\", "
            "\"items\": %u, \"runs\": %u, \"wall_ms\": %.3f, "
            "\"wall_ms_min\": %.3f, \"wall_ms_max\": %.3f, "
            "\"items_per_s\": %.3f, \"cpu_ms\": %.3f, \"stalls\": %llu,\n"
            "     \"speedup\": %.4f, \"speedup_min\": %.4f, "
            "\"speedup_max\": %.4f, \"checksum\": \"%016llx\",\n"
            "     \"wall_ms_runs\": ",
            wl_name[w], models[e].name, c->items, c->runs, c->wall, c->wall_min,
            c->wall_max, c->items / (c->wall / 1e3), c->cpu,
            (unsigned long long)c->stall, speedup(w, e), base / c->wall_max,
            base / c->wall_min, (unsigned long long)c->checksum);
    json_list(f, c->wall_ms, c->runs);
    fprintf(f, ", \"cpu_ms_runs\": ");
    json_list(f, c->cpu_ms, c->runs);
    fprintf(f, ", \"stalls_runs\": [");
    for (unsigned r = 0; r < c->runs; r++)
        fprintf(f, "%s%llu", r ? ", " : "", (unsigned long long)c->stalls[r]);
    fprintf(f, "]}");
}

/* Workload W's verdict: its text, and its tiers as lists of names. */
static void json_verdict(FILE *f, int w)
{
    char v[1024];
    cmp_tiers_t t;
    int model[E_N];
    verdict(w, v, sizeof v, &t, model);
    fprintf(f,
            "\n    {\"workload\": \"%s\", \"checksums_agree\": %s, "
            "\"text\": \"%s\",\n     \"tiers\": [[",
            wl_name[w], checksums_agree(w) ? "true" : "false", v);
    for (int i = 0; i < t.n; i++)
        fprintf(f, "%s\"%s\"",
                i == 0                       ? ""
                : t.tier[i] != t.tier[i - 1] ? "], ["
                                             : ", ",
                models[model[t.order[i]]].name);
    fprintf(f, "]], \"baseline_tier\": %d}", t.base_tier);
}

static int write_json(const char *path, const char *when)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    fprintf(f,
            "{\n  \"program\": \"fut-compare\",\n  \"version\": \"%s\",\n"
            "  \"date\": \"%s\",\n  \"cpus\": %ld,\n"
            "  \"loadavg\": [%.2f, %.2f, %.2f],\n",
            FUT_VERSION_STRING, when, sysconf(_SC_NPROCESSORS_ONLN), load[0],
            load[1], load[2]);
    fprintf(f,
            "  \"config\": {\"requests\": %u, \"latency_ms\": %u, "
            "\"chunks\": %u, \"chunk_kib\": %u, \"mixed_requests\": %u, "
            "\"pitfall_requests\": %u, \"workers\": %u, \"runs\": %u, "
            "\"stall_ms\": %u},\n"
            "  \"measurement\": \"interleaved: each round runs every workload "
            "under every executor once, on fresh executors, in an order "
            "rotated each round; wall_ms is the median over the rounds, "
            "wall_ms_min/max the spread; executors whose spreads overlap are "
            "the same within noise (one tier)\",\n",
            cfg.requests, cfg.latency_ms, cfg.chunks, cfg.chunk_kib, cfg.mixed,
            cfg.pitfall, g_workers, cfg.runs, cfg.stall_ms);
    fprintf(f, "  \"executors\": [");
    for (int e = 0; e < E_N; e++)
        fprintf(f, "%s\"%s\"", e ? ", " : "", models[e].name);
    fprintf(f, "],\n  \"results\": [");
    bool first = true;
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++)
            if (cells[w][e].done) {
                fprintf(f, "%s", first ? "" : ",");
                json_cell(f, w, e);
                first = false;
            }
    fprintf(f, "\n  ],\n  \"verdicts\": [");
    first = true;
    for (int w = 0; w < W_N; w++)
        if (baseline(w) >= 0) {
            fprintf(f, "%s", first ? "" : ",");
            json_verdict(f, w);
            first = false;
        }
    fprintf(f, "\n  ]\n}\n");
    return fclose(f) == 0 ? 0 : -1;
}

#endif
