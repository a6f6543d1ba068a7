{#-
    The partition window passed by the orchestrator as vars `min_date` / `max_date`: a half-open UTC interval
    [min_date, max_date) of ISO dates or timestamps. Either bound may be missing (empty): that side is open.
    Hourly models rebuild every hour that STARTS inside the window, in full (an unaligned bound never produces a
    partial hour that would overwrite a complete one).
-#}

{% macro window_bound(name) -%}
    {#- The validated var as a Spark timestamp literal, or none when it is empty. -#}
    {%- set value = (var(name, '') or '') | string | trim -%}
    {%- if not value -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set d = '[0-9]' -%}
    {%- set iso = '^D{4}-D{2}-D{2}([ T]D{2}:D{2}(:D{2}([.]D{1,6})?)?)?(Z|[+-]D{2}:D{2})?$' | replace('D', d) -%}
    {%- if not modules.re.match(iso, value) -%}
        {{ exceptions.raise_compiler_error("var " ~ name ~ "=" ~ value ~ " is not an ISO date or timestamp") }}
    {%- endif -%}
    {{ return("timestamp '" ~ value ~ "'") }}
{%- endmacro %}


{% macro minutes_of_window_hours(minute_column) -%}
    {#- Filter on a minute timestamp: every minute of every hour starting in the window (prunes by minute). -#}
    {%- set lo = window_bound('min_date') -%}
    {%- set hi = window_bound('max_date') -%}
    {%- set conditions = [] -%}
    {%- if lo is not none -%}
        {%- do conditions.append(minute_column ~ " >= date_trunc('HOUR', " ~ lo ~ ")") -%}
    {%- endif -%}
    {%- if hi is not none -%}
        {#- the end of the last hour that starts before max_date -#}
        {%- do conditions.append(
            minute_column ~ " < date_trunc('HOUR', " ~ hi ~ " - interval 1 microsecond) + interval 1 hour"
        ) -%}
    {%- endif -%}
    {{ return(conditions | join(' and ') if conditions else 'true') }}
{%- endmacro %}


{% macro window_hours(hour_column) -%}
    {#- Predicates (a list) on an hour-start timestamp: the hours starting in the window. -#}
    {%- set lo = window_bound('min_date') -%}
    {%- set hi = window_bound('max_date') -%}
    {%- set conditions = [] -%}
    {%- if lo is not none -%}
        {%- do conditions.append(hour_column ~ " >= date_trunc('HOUR', " ~ lo ~ ")") -%}
    {%- endif -%}
    {%- if hi is not none -%}
        {%- do conditions.append(hour_column ~ " < " ~ hi) -%}
    {%- endif -%}
    {{ return(conditions) }}
{%- endmacro %}


{% macro in_window(column, lookback=none) -%}
    {#- Filter on a timestamp column: inside the window [min_date, max_date), the lower bound moved back by
        `lookback` (a Spark interval, e.g. '1 day') when given. -#}
    {%- set lo = window_bound('min_date') -%}
    {%- set hi = window_bound('max_date') -%}
    {%- set conditions = [] -%}
    {%- if lo is not none -%}
        {%- do conditions.append(column ~ " >= " ~ lo ~ (" - interval " ~ lookback if lookback else "")) -%}
    {%- endif -%}
    {%- if hi is not none -%}
        {%- do conditions.append(column ~ " < " ~ hi) -%}
    {%- endif -%}
    {{ return(conditions | join(' and ') if conditions else 'true') }}
{%- endmacro %}


{% macro window_predicates(column) -%}
    {#- MERGE predicates (a list) on a timestamp column: the rows inside the window. -#}
    {%- set lo = window_bound('min_date') -%}
    {%- set hi = window_bound('max_date') -%}
    {%- set conditions = [] -%}
    {%- if lo is not none -%}
        {%- do conditions.append(column ~ " >= " ~ lo) -%}
    {%- endif -%}
    {%- if hi is not none -%}
        {%- do conditions.append(column ~ " < " ~ hi) -%}
    {%- endif -%}
    {{ return(conditions) }}
{%- endmacro %}


{% macro window_days(column, lookback=none) -%}
    {#- Predicates (a list) on a timestamp or date column: every whole UTC day the window touches (a refresh's
        window of a few minutes rebuilds their whole day in the daily models; a day-aligned window is unchanged),
        the lower bound moved back by `lookback` (a Spark interval, e.g. '1 day') when given. -#}
    {%- set lo = window_bound('min_date') -%}
    {%- set hi = window_bound('max_date') -%}
    {%- set conditions = [] -%}
    {%- if lo is not none -%}
        {%- do conditions.append(column ~ " >= date_trunc('DAY', " ~ lo ~ ")"
                                 ~ (" - interval " ~ lookback if lookback else "")) -%}
    {%- endif -%}
    {%- if hi is not none -%}
        {%- do conditions.append(column ~ " < date_trunc('DAY', " ~ hi ~ " - interval 1 microsecond) + interval 1 day") -%}
    {%- endif -%}
    {{ return(conditions) }}
{%- endmacro %}


{% macro in_window_days(column, lookback=none) -%}
    {#- Filter on a timestamp column: every whole UTC day the window touches (see window_days). -#}
    {%- set conditions = window_days(column, lookback) -%}
    {{ return(conditions | join(' and ') if conditions else 'true') }}
{%- endmacro %}
