/* compare_svg.h -- fut-compare's chart: one group of bars per workload, one
 * bar per executor, height = median speed-up over the group's baseline
 * (inline) on a log scale, labelled with the ratio, the median wall time and
 * any stall reports.  A whisker on each bar spans the executor's min-max:
 * baseline median / max wall time to baseline median / min wall time, so
 * two whiskers overlap exactly when the verdict calls the two executors the
 * same within noise.  Included once, by compare.c, after its cells. */
#ifndef COMPARE_SVG_H
#define COMPARE_SVG_H

/* Without libm (the examples link only libfut, ck and pthread). */
static double lg10(double x)
{
    int k = 0;
    while (x >= 2)
        x /= 2, k++;
    while (x < 1)
        x *= 2, k--;
    double z = (x - 1) / (x + 1), z2 = z * z, t = z, ln = 0;
    for (int i = 1; i < 40; i += 2, t *= z2) /* ln x = 2 atanh z */
        ln += t / i;
    return (2 * ln + k * 0.69314718055994531) / 2.30258509299404568;
}

static double pow10i(int p)
{
    double v = 1;
    for (; p > 0; p--)
        v *= 10;
    for (; p < 0; p++)
        v /= 10;
    return v;
}

static int floori(double x)
{
    int i = (int)x;
    return i > x ? i - 1 : i;
}

static double dmin(double a, double b)
{
    return a < b ? a : b;
}

static double dmax(double a, double b)
{
    return a > b ? a : b;
}

#define SVG_W 960
#define SVG_H 500
#define SVG_L 70
#define SVG_R 20
#define SVG_T 96
#define SVG_B 84

static double svg_y(double v, double lo, double hi)
{
    double h = SVG_H - SVG_T - SVG_B;
    return SVG_T + h * (1 - (lg10(v) - lo) / (hi - lo));
}

static void svg_group_label(int w, char *buf, size_t len)
{
    switch (w) {
    case W_IO:
        snprintf(buf, len, "%u requests x %u ms", cfg.requests, cfg.latency_ms);
        break;
    case W_CPU:
        snprintf(buf, len, "%u chunks x %u KiB hashed", cfg.chunks,
                 cfg.chunk_kib);
        break;
    case W_MIXED:
        snprintf(buf, len, "%u requests, each hashed", cfg.mixed);
        break;
    default:
        snprintf(buf, len, "%u blocking requests", cfg.pitfall);
    }
}

/* Every group's baseline is the first executor measured (inline, unless
 * --executors left it out). */
static const char *svg_base_name(void)
{
    for (int e = 0; e < E_N; e++)
        if (cfg.ex[e])
            return models[e].name;
    return "?";
}

static void svg_axis(FILE *f, double lo, double hi)
{
    int x1 = SVG_W - SVG_R;
    for (int p = floori(lo); p <= -floori(-hi); p++)
        for (int m = 1; m <= 5; m += m == 1 ? 1 : 3) { /* 1, 2, 5 */
            double v = m * pow10i(p), y = svg_y(v, lo, hi);
            if (lg10(v) < lo - 1e-9 || lg10(v) > hi + 1e-9)
                continue;
            fprintf(f,
                    "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='%s'/>\n"
                    "<text x='%d' y='%.1f' text-anchor='end' "
                    "font-size='12' fill='#555'>%gx</text>\n",
                    SVG_L, y, x1, y, m == 1 ? "#bbb" : "#eee", SVG_L - 6, y + 4,
                    v);
        }
    fprintf(f,
            "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#333' "
            "stroke-width='1.5'/>\n",
            SVG_L, svg_y(1, lo, hi), x1, svg_y(1, lo, hi));
    fprintf(f,
            "<text transform='translate(18,%d) rotate(-90)' "
            "text-anchor='middle' font-size='13' fill='#333'>speed-up over "
            "%s (log scale)</text>\n",
            (SVG_T + SVG_H - SVG_B) / 2, svg_base_name());
}

/* The speed-up range of cell (W, E): baseline median over its max and min
 * wall times. */
static void svg_range(int w, int e, double *lo, double *hi)
{
    double base = cells[w][baseline(w)].wall;
    *lo = cells[w][e].wall_max > 0 ? base / cells[w][e].wall_max : 0;
    *hi = cells[w][e].wall_min > 0 ? base / cells[w][e].wall_min : 0;
}

static void svg_whisker(FILE *f, double cx, double y0, double y1)
{
    fprintf(f,
            "<path d='M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8' "
            "stroke='#222' stroke-width='1.2' fill='none'/>\n",
            cx, y0, y1, cx - 4, y0, cx - 4, y1);
}

static void svg_bar(FILE *f, int w, int e, double x, double bw, double lo,
                    double hi)
{
    const struct cell *c = &cells[w][e];
    double r = speedup(w, e), y = svg_y(r, lo, hi), rlo, rhi;
    double base = SVG_H - SVG_B;
    char rb[32];
    svg_range(w, e, &rlo, &rhi);
    fprintf(f,
            "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' "
            "fill='%s'><title>%s on %s: %.1f ms (%.1f-%.1f), %s</title>"
            "</rect>\n",
            x, y, bw, base - y, models[e].color, wl_name[w], models[e].name,
            c->wall, c->wall_min, c->wall_max, fmt_ratio(rb, sizeof rb, r));
    double cx = x + bw / 2, top = svg_y(rhi, lo, hi);
    svg_whisker(f, cx, svg_y(rlo, lo, hi), top);
    top = dmin(top, y);
    fprintf(f,
            "<text x='%.1f' y='%.1f' text-anchor='middle' "
            "font-size='13' font-weight='bold'>%s</text>\n",
            cx, top - 18, rb);
    fprintf(f,
            "<text x='%.1f' y='%.1f' text-anchor='middle' "
            "font-size='10' fill='#444'>%.*f ms</text>\n",
            cx, top - 5, c->wall < 10 ? 1 : 0, c->wall);
    if (c->stall)
        fprintf(f,
                "<text x='%.1f' y='%.1f' text-anchor='middle' "
                "font-size='10' fill='#c00'>%llu</text>\n"
                "<text x='%.1f' y='%.1f' text-anchor='middle' "
                "font-size='10' fill='#c00'>stalls</text>\n",
                cx, top - 45, (unsigned long long)c->stall, cx, top - 33);
}

static int write_svg(const char *path, const char *when)
{
    int groups = 0, bars = 0;
    double rmin = 1, rmax = 1;
    for (int w = 0; w < W_N; w++)
        groups += baseline(w) >= 0;
    for (int e = 0; e < E_N; e++)
        bars += cfg.ex[e];
    for (int w = 0; w < W_N; w++)
        for (int e = 0; e < E_N; e++)
            if (cells[w][e].done && speedup(w, e) > 0) {
                double lo, hi;
                svg_range(w, e, &lo, &hi);
                rmin = dmin(rmin, dmin(speedup(w, e), lo));
                rmax = dmax(rmax, dmax(speedup(w, e), hi));
            }
    if (!groups || !bars)
        return 0;
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    /* Room above the tallest bar for its three labels. */
    double lo = lg10(dmin(0.5, rmin / 1.5)), hi = lg10(rmax) + 0.35;
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='%d' "
            "height='%d' viewBox='0 0 %d %d' font-family='sans-serif'>\n"
            "<rect width='100%%' height='100%%' fill='white'/>\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    fprintf(f,
            "<text x='%d' y='26' font-size='18' font-weight='bold'>"
            "fut-compare: the same future chains on each executor"
            "</text>\n<text x='%d' y='46' font-size='12' fill='#555'>"
            "speed-up over %s, higher is better: bar = median of %u "
            "interleaved round%s, whisker = min-max (overlapping: the same "
            "within noise)</text>\n"
            "<text x='%d' y='72' font-size='12' fill='#555' "
            "text-anchor='end'>%s, %ld CPUs, pool of %u, load %.1f</text>\n",
            SVG_L, SVG_L, svg_base_name(), cfg.runs, cfg.runs > 1 ? "s" : "",
            SVG_W - SVG_R, when, sysconf(_SC_NPROCESSORS_ONLN), g_workers,
            load[0]);
    for (int e = 0, k = 0; e < E_N; e++)
        if (cfg.ex[e]) {
            int lx = SVG_L + 120 * k++;
            fprintf(f,
                    "<rect x='%d' y='60' width='14' height='14' "
                    "fill='%s'/><text x='%d' y='72' font-size='13'>%s"
                    "</text>\n",
                    lx, models[e].color, lx + 20, models[e].name);
        }
    svg_axis(f, lo, hi);
    double gw = (double)(SVG_W - SVG_L - SVG_R) / groups;
    double bw = gw * 0.8 / bars;
    for (int w = 0, g = 0; w < W_N; w++) {
        if (baseline(w) < 0)
            continue;
        double gx = SVG_L + gw * g++ + gw * 0.1;
        for (int e = 0, k = 0; e < E_N; e++)
            if (cfg.ex[e]) {
                if (cells[w][e].done)
                    svg_bar(f, w, e, gx + bw * k, bw * 0.9, lo, hi);
                k++;
            }
        char sub[96];
        svg_group_label(w, sub, sizeof sub);
        fprintf(f,
                "<text x='%.1f' y='%d' text-anchor='middle' "
                "font-size='14' font-weight='bold'>%s</text>\n"
                "<text x='%.1f' y='%d' text-anchor='middle' "
                "font-size='12' fill='#555'>%s</text>\n",
                gx + gw * 0.4, SVG_H - SVG_B + 22, wl_title[w], gx + gw * 0.4,
                SVG_H - SVG_B + 40, sub);
    }
    fprintf(f, "</svg>\n");
    return fclose(f) == 0 ? 0 : -1;
}

#endif
