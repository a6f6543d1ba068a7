{#-
    Models land in exactly the namespace they name (`+schema: gold` -> gold), not dbt's default
    "<target schema>_<custom schema>" (gold_gold). Without a custom schema: the target schema.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}
{%- endmacro %}
