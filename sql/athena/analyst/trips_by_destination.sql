-- The original blog post's query: trips per destination, on Athena's native Delta table.
select
    destination,
    count(*) as trips
from cdc_lake.delta_emr_source_travel_details
group by destination
order by trips desc, destination asc
