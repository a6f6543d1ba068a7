{#-
    Target-side MERGE predicates, computed when each MERGE is rendered from the run's window vars.

    An incremental model declares the column its MERGE may prune the target on and how the window covers it:
        merge_window={'column': 'open_time', 'span': 'rows'}       the rows inside [min_date, max_date)
        merge_window={'column': 'day', 'span': 'days'}             every whole UTC day the window touches
    dbt renders config() values once, when it parses; runs reuse one parsed manifest (the dbt asset runs dbt in
    the run's process with it), so predicates written into `incremental_predicates` would keep the window of the
    parse instead of the run's.
-#}

{% macro merge_window_predicates(spec) -%}
    {%- if not spec -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set column = 'DBT_INTERNAL_DEST.' ~ spec['column'] -%}
    {%- if spec['span'] == 'rows' -%}
        {{ return(window_predicates(column)) }}
    {%- elif spec['span'] == 'days' -%}
        {{ return(window_days(column)) }}
    {%- endif -%}
    {{ exceptions.raise_compiler_error("merge_window span must be rows or days, not " ~ spec['span']) }}
{%- endmacro %}


{% macro get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates=none) -%}
    {#- dbt's get_merge_sql (dbt-spark's spark__get_merge_sql) with the model's merge_window predicates added. -#}
    {%- set predicates = (incremental_predicates or []) + merge_window_predicates(config.get('merge_window')) -%}
    {{- adapter.dispatch('get_merge_sql', 'dbt')(target, source, unique_key, dest_columns, predicates) -}}
{%- endmacro %}
