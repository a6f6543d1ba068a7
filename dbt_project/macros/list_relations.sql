{#-
    The relations of a namespace, for dbt's relation cache, from one `show tables`.

    dbt-spark first tries `show table extended`, which Spark cannot run on the Iceberg catalog's (v2) tables, and
    then runs `describe table extended` on every table of the namespace to learn what it is. Every table of the
    lakehouse catalog is an Iceberg table (the profile's default catalog is Iceberg's SparkCatalog, which holds no
    views), so the one `show tables` says it all: a row per table in the shape of `show table extended`
    (namespace, name, temporary, information) with the provider dbt-spark reads from the information.
    A missing namespace fails as before (dbt-spark then lists nothing).
-#}
{% macro spark__list_relations_without_caching(relation) %}
    {% call statement('list_relations_without_caching', fetch_result=True) -%}
        show tables in {{ relation.schema }}
    {%- endcall %}
    {% set rows = [] %}
    {% for row in load_result('list_relations_without_caching').table %}
        {% do rows.append([row[0], row[1], row[2], 'Provider: iceberg\n']) %}
    {% endfor %}
    {% do return(rows) %}
{% endmacro %}
