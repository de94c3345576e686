<?xml version="1.0" encoding="UTF-8"?>
<!-- Made for the cim-twin tests: three buildings near Delft, an LoD1 block, an LoD2 gable house and an LoD1 building of two parts. CC0. -->
<CityModel xmlns="http://www.opengis.net/citygml/2.0" xmlns:gml="http://www.opengis.net/gml"
  xmlns:bldg="http://www.opengis.net/citygml/building/2.0" xmlns:gen="http://www.opengis.net/citygml/generics/2.0">
  <gml:boundedBy><gml:Envelope srsName="urn:ogc:def:crs,crs:EPSG::28992,crs:EPSG::5709" srsDimension="3">
    <gml:lowerCorner>85000 447000 0.5</gml:lowerCorner><gml:upperCorner>85030 447008 7</gml:upperCorner></gml:Envelope></gml:boundedBy>
  <cityObjectMember>
    <bldg:Building gml:id="BLDG_A">
      <gen:stringAttribute name="bag_id"><gen:value>0503100000000001</gen:value></gen:stringAttribute>
      <bldg:function>1000</bldg:function>
      <bldg:yearOfConstruction>1965</bldg:yearOfConstruction>
      <bldg:measuredHeight uom="m">6.0</bldg:measuredHeight>
      <bldg:lod1Solid><gml:Solid><gml:exterior><gml:CompositeSurface><gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList srsDimension="3">85000 447008 0.5 85010 447008 0.5 85010 447000 0.5 85000 447000 0.5 85000 447008 0.5</gml:posList></gml:LinearRing></gml:exterior></gml:Polygon></gml:surfaceMember><gml:surfaceMember><gml:Polygon><gml:exterior><gml:LinearRing><gml:posList srsDimension="3">85000 447000 6.5 85010 447000 6.5 85010 447008 6.5 85000 447008 6.5 85000 447000 6.5</gml:posList></gml:LinearRing></gml:exteri