{#-
    Generic test: no two rows share the values of `columns` (dbt_utils' unique_combination_of_columns; no dbt
    packages can be installed offline). Usage:
        data_tests:
          - unique_combination:
              arguments:
                columns: [exchange, market, symbol, hour]
-#}
{% test unique_combination(model, columns) %}
    select {{ columns | join(', ') }}, count(*) as n_rows
    from {{ model }}
    group by {{ columns | join(', ') }}
    having count(*) > 1
{% endtest %}
